"""Drives otpd with the official Twilio Python SDK (twilio, pinned), changing only the Verify
base URL. Usage: twilio_check.py BASE_URL ACCOUNT_SID AUTH_TOKEN API_KEY_SID API_KEY_SECRET

Every check raises on failure; the last line is "N passed, 0 failed"."""

import json
import re
import sys
import time
import urllib.parse
import urllib.request

from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

BASE, ACCOUNT_SID, AUTH_TOKEN, KEY_SID, KEY_SECRET = sys.argv[1:6]
passed = 0


def check(name, condition):
    global passed
    if not condition:
        raise AssertionError(name)
    passed += 1
    print("ok -", name)


def fails(name, status, code, call):
    try:
        call()
    except TwilioRestException as error:
        check(f"{name} -> {status} {code} (got {error.status} {error.code})", error.status == status and error.code == code)
        return
    raise AssertionError(f"{name}: expected TwilioRestException {status} {code}, nothing raised")


seen = {}


def newest_code(to):
    """The code of the newest message to `to` sent since the last call for `to` (delivery is
    asynchronous: wait for it)."""
    url = BASE + "/dev/inbox.json?" + urllib.parse.urlencode({"to": to})
    for _ in range(300):
        with urllib.request.urlopen(url) as response:
            messages = json.load(response)
        if len(messages) > seen.get(to, 0):
            seen[to] = len(messages)
            return re.search(r"\b([0-9]{4,10})\b", messages[0]["body"]).group(1)
        time.sleep(0.01)
    raise AssertionError(f"no new message to {to}")


# The quick-start from Twilio's Verify docs; only the base URL differs.
client = Client(ACCOUNT_SID, AUTH_TOKEN)
client.verify.base_url = BASE

service = client.verify.v2.services.create(friendly_name="My First Verify Service")
check("service sid", service.sid.startswith("VA") and len(service.sid) == 34)
check("service friendly name", service.friendly_name == "My First Verify Service")
check("service url points at otpd", service.url.startswith(BASE))
verify = client.verify.v2.services(service.sid)

PHONE = "+14155552671"
verification = verify.verifications.create(to=PHONE, channel="sms")
check("verification pending", verification.status == "pending")
check("verification sid", verification.sid.startswith("VE"))
check("send_code_attempts", len(verification.send_code_attempts) == 1)
code = newest_code(PHONE)
wrong = "000000" if code != "000000" else "111111"
result = verify.verification_checks.create(to=PHONE, code=wrong)
check("wrong code is pending, not valid", result.status == "pending" and result.valid is False)
result = verify.verification_checks.create(to=PHONE, code=code)
check("right code approved", result.status == "approved" and result.valid is True)
fails("check after approval", 404, 20404, lambda: verify.verification_checks.create(to=PHONE, code=code))
fails("fetch after approval", 404, 20404, lambda: verify.verifications(verification.sid).fetch())

# Fetch by To, resend with the same code, max sends.
PHONE2 = "+14155552672"
first = verify.verifications.create(to=PHONE2, channel="sms")
first_code = newest_code(PHONE2)
again = verify.verifications.create(to=PHONE2, channel="sms")
check("resend reuses the verification", again.sid == first.sid)
check("resend appends an attempt", len(again.send_code_attempts) == 2)
check("resend sends the same code", newest_code(PHONE2) == first_code)
by_to = verify.verifications(PHONE2).fetch()
check("fetch by To", by_to.sid == first.sid)
for _ in range(3):
    verify.verifications.create(to=PHONE2, channel="sms")
fails("sixth send", 429, 60203, lambda: verify.verifications.create(to=PHONE2, channel="sms"))

# Max check attempts.
PHONE3 = "+14155552673"
verify.verifications.create(to=PHONE3, channel="sms")
right = newest_code(PHONE3)
wrong = "000000" if right != "000000" else "111111"
for _ in range(4):
    check("wrong code counted", verify.verification_checks.create(to=PHONE3, code=wrong).valid is False)
last = verify.verification_checks.create(to=PHONE3, code=wrong)
check("fifth wrong code ends it", last.status == "max_attempts_reached")
fails("check after max attempts", 429, 60202, lambda: verify.verification_checks.create(to=PHONE3, code=right))

# Cancel.
PHONE4 = "+14155552674"
pending = verify.verifications.create(to=PHONE4, channel="sms")
newest_code(PHONE4)  # read it, so the custom-code message below is told apart
canceled = verify.verifications(pending.sid).update(status="canceled")
check("cancel", canceled.status == "canceled")
check("canceled stays fetchable", verify.verifications(pending.sid).fetch().status == "canceled")
fails("check canceled", 404, 20404, lambda: verify.verification_checks.create(verification_sid=pending.sid, code="123456"))

# Custom code needs the service setting.
fails("custom code refused", 403, 60204, lambda: verify.verifications.create(to=PHONE4, channel="sms", custom_code="8642"))
custom = client.verify.v2.services.create(friendly_name="Custom", custom_code_enabled=True, code_length=4)
check("custom code enabled", custom.custom_code_enabled is True and custom.code_length == 4)
v = client.verify.v2.services(custom.sid).verifications.create(to=PHONE4, channel="sms", custom_code="8642")
check("custom code sent", newest_code(PHONE4) == "8642")
check("custom code checks", client.verify.v2.services(custom.sid).verification_checks.create(verification_sid=v.sid, code="8642").status == "approved")

# Errors the SDK surfaces.
fails("no target", 400, 60221, lambda: verify.verification_checks.create(code="123456"))
fails("bad To", 400, 60200, lambda: verify.verifications.create(to="not-a-number", channel="sms"))
fails("unknown service", 404, 20404, lambda: client.verify.v2.services("VA" + "0" * 32).fetch())

# API key authentication.
key_client = Client(KEY_SID, KEY_SECRET, account_sid=ACCOUNT_SID)
key_client.verify.base_url = BASE
check("API key fetches the service", key_client.verify.v2.services(service.sid).fetch().sid == service.sid)
bad = Client(ACCOUNT_SID, "wrong-token")
bad.verify.base_url = BASE
fails("wrong auth token", 401, 20003, lambda: bad.verify.v2.services(service.sid).fetch())

# Paging: five more services, pages of two.
for n in range(5):
    client.verify.v2.services.create(friendly_name=f"Paging {n}")
page = client.verify.v2.services.page(page_size=2)
pages, seen = 1, [s.sid for s in page]
while page.next_page_url:
    check("next page points at otpd", page.next_page_url.startswith(BASE))
    page = page.next_page()
    pages += 1
    seen.extend(s.sid for s in page)
check("paged through every service", len(seen) == len(set(seen)) == 7 and pages == 4)
check("list() follows the pages", len(client.verify.v2.services.list(page_size=2)) == 7)

updated = client.verify.v2.services(service.sid).update(friendly_name="Renamed", do_not_share_warning_enabled=True)
check("service update", updated.friendly_name == "Renamed" and updated.do_not_share_warning_enabled is True)
check("service delete", client.verify.v2.services(custom.sid).delete() is True)
fails("deleted service", 404, 20404, lambda: client.verify.v2.services(custom.sid).fetch())

limit = client.verify.v2.services(service.sid).rate_limits.create(unique_name="end_user_ip", description="per user")
check("rate limit created", limit.sid.startswith("RK") and limit.unique_name == "end_user_ip")
bucket = client.verify.v2.services(service.sid).rate_limits(limit.sid).buckets.create(max=1, interval=60)
check("bucket created", bucket.sid.startswith("BL") and bucket.max == 1 and bucket.interval == 60)
check("buckets listed", [b.sid for b in client.verify.v2.services(service.sid).rate_limits(limit.sid).buckets.list()] == [bucket.sid])
client.verify.v2.services(service.sid).verifications.create(to="+14155552679", channel="sms", rate_limits={"end_user_ip": "198.51.100.7"})
fails("bucket full", 429, 20429, lambda: client.verify.v2.services(service.sid).verifications.create(
    to="+14155552670", channel="sms", rate_limits={"end_user_ip": "198.51.100.7"}))
check("rate limit deleted", client.verify.v2.services(service.sid).rate_limits(limit.sid).delete() is True)

safe = client.verify.v2.safelist.create(phone_number="+449098765432")
check("safe list entry created", safe.sid.startswith("GN") and safe.phone_number == "+449098765432")
check("safe list entry fetched", client.verify.v2.safelist("+449098765432").fetch().sid == safe.sid)
check("safe list entry deleted", client.verify.v2.safelist("+449098765432").delete() is True)
fails("removed safe list entry", 404, 20404, lambda: client.verify.v2.safelist("+449098765432").fetch())

hook = client.verify.v2.services(service.sid).webhooks.create(
    friendly_name="events", event_types=["verification.approved", "delivery.sent"], webhook_url="https://example.com/otpd")
check("webhook created", hook.sid.startswith("YW") and hook.event_types == ["verification.approved", "delivery.sent"] and hook.status == "enabled")
hook = client.verify.v2.services(service.sid).webhooks(hook.sid).update(status="disabled")
check("webhook updated", hook.status == "disabled")
check("webhooks listed", [w.sid for w in client.verify.v2.services(service.sid).webhooks.list()] == [hook.sid])
check("webhook deleted", client.verify.v2.services(service.sid).webhooks(hook.sid).delete() is True)

attempts = client.verify.v2.verification_attempts.list(verify_service_sid=service.sid)
check("attempts listed", len(attempts) > 0 and all(a.sid.startswith("VL") for a in attempts))
check("attempt fetched", client.verify.v2.verification_attempts(attempts[0].sid).fetch().sid == attempts[0].sid)
summary = client.verify.v2.verification_attempts_summary().fetch(verify_service_sid=service.sid)
check("attempts summary", summary.total_attempts == len(attempts) and summary.total_converted + summary.total_unconverted == summary.total_attempts)

print(f"{passed} passed, 0 failed")
