// Auth0's @auth0/auth0-auth-js drives passgate's MFA API (tests/auth0_js.rs).
// Environment: PASSGATE_URL (https://localhost:PORT), PASSGATE_DOMAIN (the
// issuer's host the SDK is configured with), NODE_EXTRA_CA_CERTS (the
// gateway's certificate). Prints "ok" and exits 0 only when every step passed.
import { createHmac } from "node:crypto";
import assert from "node:assert/strict";
import { AuthClient } from "@auth0/auth0-auth-js";

const base = process.env.PASSGATE_URL;
const domain = process.env.PASSGATE_DOMAIN;
// The SDK talks to https://<domain>; send it to the test's gateway instead.
const customFetch = (url, init) =>
  fetch(String(url).replace(`https://${domain}`, base), init);

const auth = new AuthClient({
  domain,
  clientId: "js-app",
  clientSecret: "js-secret",
  customFetch,
});

// RFC 6238 TOTP (SHA-1, 6 digits, 30 s) from a base32 secret.
function totp(secret, now = Date.now()) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const c of secret.replace(/=+$/, "")) {
    bits += alphabet.indexOf(c).toString(2).padStart(5, "0");
  }
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(now / 1000 / 30)));
  const mac = createHmac("sha1", key).update(counter).digest();
  const off = mac[mac.length - 1] & 15;
  const n = (mac.readUInt32BE(off) & 0x7fffffff) % 1_000_000;
  return String(n).padStart(6, "0");
}

// The password step itself (the SDK has no password grant): mfa_required.
async function mfaToken() {
  const r = await customFetch(`https://${domain}/oauth/token`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      grant_type: "password",
      username: "js-user",
      password: "correct horse battery",
      client_id: "js-app",
      client_secret: "js-secret",
      scope: "openid read:items",
    }),
  });
  const body = await r.json();
  assert.equal(r.status, 403, JSON.stringify(body));
  assert.equal(body.error, "mfa_required");
  return body.mfa_token;
}

function amr(accessToken) {
  const payload = JSON.parse(Buffer.from(accessToken.split(".")[1], "base64url"));
  return payload.amr;
}

// 1. Enrol TOTP, verify with a code computed from the returned secret.
let token = await mfaToken();
const enrolment = await auth.mfa.enrollAuthenticator({
  mfaToken: token,
  authenticatorTypes: ["otp"],
});
assert.equal(enrolment.authenticatorType, "otp");
assert.ok(enrolment.secret, "a secret");
assert.equal(enrolment.recoveryCodes.length, 1);
const recoveryCode = enrolment.recoveryCodes[0];
let tokens = await auth.mfa.verify({ mfaToken: token, factorType: "otp", otp: totp(enrolment.secret) });
assert.deepEqual(amr(tokens.accessToken), ["mfa"]);

// 2. Challenge the confirmed authenticator, then verify with the recovery code.
token = await mfaToken();
const list = await auth.mfa.listAuthenticators({ mfaToken: token });
const otp = list.find((a) => a.authenticatorType === "otp");
assert.ok(otp && otp.active, JSON.stringify(list));
const challenge = await auth.mfa.challengeAuthenticator({
  mfaToken: token,
  challengeType: "otp",
  authenticatorId: otp.id,
});
assert.equal(challenge.challengeType, "otp");
tokens = await auth.mfa.verify({ mfaToken: token, factorType: "recovery-code", recoveryCode });
assert.deepEqual(amr(tokens.accessToken), ["mfa"]);
assert.ok(tokens.recoveryCode && tokens.recoveryCode !== recoveryCode, "a fresh recovery code");

// 3. The spent code is dead.
token = await mfaToken();
await assert.rejects(
  auth.mfa.verify({ mfaToken: token, factorType: "recovery-code", recoveryCode }),
  (e) => e.cause?.error === "invalid_grant" || /recovery_code/.test(e.message),
);
console.log("ok");
