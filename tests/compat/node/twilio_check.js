// Drives otpd with the official Twilio Node SDK (twilio, pinned), changing only the Verify
// base URL. Usage: node twilio_check.js BASE_URL ACCOUNT_SID AUTH_TOKEN API_KEY_SID API_KEY_SECRET
const twilio = require("twilio");

const [BASE, ACCOUNT_SID, AUTH_TOKEN, KEY_SID, KEY_SECRET] = process.argv.slice(2);
let passed = 0;

function check(name, condition) {
  if (!condition) throw new Error(`failed: ${name}`);
  passed += 1;
  console.log(`ok - ${name}`);
}

async function fails(name, status, code, call) {
  try {
    await call();
  } catch (error) {
    check(`${name} -> ${status} ${code} (got ${error.status} ${error.code})`, error.status === status && error.code === code);
    return;
  }
  throw new Error(`${name}: expected ${status} ${code}, nothing thrown`);
}

const seen = new Map();

// The code of the newest message to `to` sent since the last call for `to` (delivery is
// asynchronous: wait for it).
async function newestCode(to) {
  for (let i = 0; i < 300; i += 1) {
    const response = await fetch(`${BASE}/dev/inbox.json?to=${encodeURIComponent(to)}`);
    const messages = await response.json();
    if (messages.length > (seen.get(to) || 0)) {
      seen.set(to, messages.length);
      return messages[0].body.match(/\b([0-9]{4,10})\b/)[1];
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`no new message to ${to}`);
}

async function main() {
  // The quick-start from Twilio's Verify docs; only the base URL differs.
  const client = twilio(ACCOUNT_SID, AUTH_TOKEN);
  client.verify.baseUrl = BASE;

  const service = await client.verify.v2.services.create({ friendlyName: "My First Verify Service" });
  check("service sid", service.sid.startsWith("VA"));
  const verify = client.verify.v2.services(service.sid);

  const phone = "+14155552681";
  const verification = await verify.verifications.create({ to: phone, channel: "sms" });
  check("verification pending", verification.status === "pending");
  check("dateCreated parsed", verification.dateCreated instanceof Date && !isNaN(verification.dateCreated));
  const code = await newestCode(phone);
  const wrong = code === "000000" ? "111111" : "000000";
  const miss = await verify.verificationChecks.create({ to: phone, code: wrong });
  check("wrong code pending", miss.status === "pending" && miss.valid === false);
  const hit = await verify.verificationChecks.create({ to: phone, code });
  check("right code approved", hit.status === "approved" && hit.valid === true);
  await fails("check after approval", 404, 20404, () => verify.verificationChecks.create({ to: phone, code }));

  const phone2 = "+14155552682";
  const first = await verify.verifications.create({ to: phone2, channel: "sms" });
  const byTo = await verify.verifications(phone2).fetch();
  check("fetch by To", byTo.sid === first.sid);
  for (let i = 0; i < 4; i += 1) await verify.verifications.create({ to: phone2, channel: "sms" });
  await fails("sixth send", 429, 60203, () => verify.verifications.create({ to: phone2, channel: "sms" }));

  const phone3 = "+14155552683";
  const v3 = await verify.verifications.create({ to: phone3, channel: "sms" });
  const right = await newestCode(phone3);
  const wrong3 = right === "000000" ? "111111" : "000000";
  for (let i = 0; i < 5; i += 1) await verify.verificationChecks.create({ verificationSid: v3.sid, code: wrong3 });
  await fails("max attempts", 429, 60202, () => verify.verificationChecks.create({ verificationSid: v3.sid, code: right }));

  const v4 = await verify.verifications.create({ to: "+14155552684", channel: "sms" });
  const canceled = await verify.verifications(v4.sid).update({ status: "canceled" });
  check("cancel", canceled.status === "canceled");
  await fails("custom code refused", 403, 60204, () => verify.verifications.create({ to: "+14155552685", channel: "sms", customCode: "8642" }));

  const keyClient = twilio(KEY_SID, KEY_SECRET, { accountSid: ACCOUNT_SID });
  keyClient.verify.baseUrl = BASE;
  const fetched = await keyClient.verify.v2.services(service.sid).fetch();
  check("API key auth", fetched.sid === service.sid);

  for (let n = 0; n < 5; n += 1) await client.verify.v2.services.create({ friendlyName: `Node paging ${n}` });
  const all = await client.verify.v2.services.list({ pageSize: 2 });
  check("list follows pages", all.length >= 6 && new Set(all.map((s) => s.sid)).size === all.length);

  console.log(`${passed} passed, 0 failed`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
