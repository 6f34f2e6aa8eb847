"""Drives otpd with the official SMS.CX Python client (smscx-client, pinned), changing only
its host. Usage: smscx_client_check.py BASE_URL APPLICATION_ID APPLICATION_SECRET API_KEY

Every check raises on failure; the last line is "N passed, 0 failed"."""

import json
import sys
import time
import urllib.parse
import urllib.request

import smscx_client
from smscx_client.api import oauth_api, otp_api
from smscx_client.model.new_otp_request import NewOtpRequest

BASE, APP_ID, APP_SECRET, API_KEY = sys.argv[1:5]
PHONE = "+33612345678"
passed = 0


def check(name, condition):
    global passed
    if not condition:
        raise AssertionError(name)
    passed += 1
    print("ok -", name)


def raises(name, exception, call):
    try:
        call()
    except exception as error:
        check(f"{name} raises {exception.__name__}", True)
        return json.loads(error.body)
    except Exception as error:  # the wrong exception is a failure
        raise AssertionError(f"{name}: expected {exception.__name__}, got {type(error).__name__}: {error}")
    raise AssertionError(f"{name}: expected {exception.__name__}, nothing raised")


seen = {}


def newest_code(phone):
    """The code of the newest message to `phone` sent since the last call (delivery is
    asynchronous: wait for it)."""
    url = BASE + "/dev/inbox.json?" + urllib.parse.urlencode({"to": phone})
    for _ in range(300):
        with urllib.request.urlopen(url) as response:
            messages = json.load(response)
        if len(messages) > seen.get(phone, 0):
            seen[phone] = len(messages)
            return messages[0]["body"].rsplit(" ", 1)[1]
        time.sleep(0.01)
    raise AssertionError(f"no new message to {phone}")


def token(scope=None, secret=APP_SECRET):
    configuration = smscx_client.Configuration(host=BASE, username=APP_ID, password=secret)
    api = oauth_api.OauthApi(smscx_client.ApiClient(configuration))
    return api.get_access_token(scope=scope) if scope else api.get_access_token()


response = token(scope="otp sms")
check("token type is Bearer", response.token_type == "Bearer")
check("token expires_in is an integer", isinstance(response.expires_in, int))
check("token scope echoed", response.scope == "otp sms")
raises("wrong secret", smscx_client.InvalidCredentialsException, lambda: token(secret="wrong"))
raises("unknown scope", smscx_client.InvalidScopeException, lambda: token(scope="otp teleport"))

otp = otp_api.OtpApi(smscx_client.ApiClient(smscx_client.Configuration(host=BASE, access_token=response.access_token)))

created = otp.new_otp(NewOtpRequest(
    phone_number=PHONE, country_iso="FR", _from="InfoText",
    template="Your verification code is {{pin}}", track_id="3b90b6d3-4fd6-40d8-9b2d-310cb50f201d",
    ttl=180, max_attempts=4, pin_type="numbers", pin_length=4,
    otp_callback_url="http://127.0.0.1:9/otp-status",
))
check("new OTP is PENDING", created.status == "PENDING")
check("new OTP echoes trackId", created.track_id == "3b90b6d3-4fd6-40d8-9b2d-310cb50f201d")
check("new OTP has countryIso", created.country_iso == "FR")
code = newest_code(PHONE)
check("code has the requested length", len(code) == 4)
verified = otp.verify_otp(created.otp_id, code)
check("right PIN verifies", verified["status"] == "VERIFIED")
check("status reads VERIFIED", otp.get_otp_status(created.otp_id).status == "VERIFIED")
body = raises("verify twice", smscx_client.OtpAlreadyVerifiedException, lambda: otp.verify_otp(created.otp_id, code))
check("verify twice code 2023", body["error"]["code"] == 2023)
body = raises("cancel a verified OTP", smscx_client.OtpActionNotAllowedException, lambda: otp.cancel_otp(created.otp_id))
check("cancel verified code 2031", body["error"]["code"] == 2031)

wrong_pin = otp.new_otp(NewOtpRequest(phone_number=PHONE))
right = newest_code(PHONE)
wrong = "000000" if right != "000000" else "111111"
body = raises("wrong PIN", smscx_client.InvalidPinException, lambda: otp.verify_otp(wrong_pin.otp_id, wrong))
check("wrong PIN code 2029", body["error"]["code"] == 2029)
check("wrong PIN counted", otp.get_otp_status(wrong_pin.otp_id).attempts == 1)

one_try = otp.new_otp(NewOtpRequest(phone_number=PHONE, max_attempts=1))
right = newest_code(PHONE)
wrong = "000000" if right != "000000" else "111111"
body = raises("last attempt", smscx_client.OtpFailedException, lambda: otp.verify_otp(one_try.otp_id, wrong))
check("last attempt code 2027", body["error"]["code"] == 2027)
body = raises("after max attempts", smscx_client.OtpFailedException, lambda: otp.verify_otp(one_try.otp_id, right))
check("after max attempts code 2026", body["error"]["code"] == 2026)
check("status reads FAILED", otp.get_otp_status(one_try.otp_id).status == "FAILED")

to_cancel = otp.new_otp(NewOtpRequest(phone_number=PHONE))
cancelled = otp.cancel_otp(to_cancel.otp_id)
check("cancel answers the id", cancelled.info.id == to_cancel.otp_id)
body = raises("cancel twice", smscx_client.OtpCancelledException, lambda: otp.cancel_otp(to_cancel.otp_id))
check("cancel twice code 2030", body["error"]["code"] == 2030)
body = raises("verify cancelled", smscx_client.OtpCancelledException, lambda: otp.verify_otp(to_cancel.otp_id, "1234"))
check("verify cancelled code 2024", body["error"]["code"] == 2024)
check("status reads CANCELLED", otp.get_otp_status(to_cancel.otp_id).status == "CANCELLED")

raises("unknown id", smscx_client.ResourceNotFoundException, lambda: otp.get_otp_status("01a20884-c9be-7342-ade0-793327ba5265"))
raises("invalid number", smscx_client.InvalidRequestException, lambda: otp.new_otp(NewOtpRequest(phone_number="+999123")))

with_key = otp_api.OtpApi(smscx_client.ApiClient(smscx_client.Configuration(host=BASE, api_key=API_KEY)))
check("API key creates OTPs", with_key.new_otp(NewOtpRequest(phone_number=PHONE)).status == "PENDING")
bad_key = otp_api.OtpApi(smscx_client.ApiClient(smscx_client.Configuration(host=BASE, api_key="nope")))
raises("bad API key", smscx_client.InvalidCredentialsException, lambda: bad_key.new_otp(NewOtpRequest(phone_number=PHONE)))

print(f"{passed} passed, 0 failed")
