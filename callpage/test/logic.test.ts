import assert from "node:assert/strict";
import { test } from "node:test";
import {
  chatToSend,
  endKind,
  grantFromFrontendUrl,
  initials,
  isShown,
  legacyChatText,
  recordingFromMetadata,
} from "../src/logic";
import { TEXTS } from "../src/i18n";

test("initials skip the guest mark and punctuation", () => {
  assert.equal(initials("Zoé Martin (invité)"), "ZM");
  assert.equal(initials("anne"), "A");
  assert.equal(initials("  "), "?");
  assert.equal(initials("Jean-Pierre Dupont"), "JP");
});

test("the token is read from a built-in frontend_url, and from an operator's", () => {
  const grant = grantFromFrontendUrl("#livekit_url=wss%3A%2F%2Flk.test&token=abc&room=r", "x");
  assert.deepEqual(grant, { token: "abc", livekitUrl: "wss://lk.test" });
  assert.deepEqual(grantFromFrontendUrl("https://m.test/c?token=t", "wss://d"), {
    token: "t",
    livekitUrl: "wss://d",
  });
  assert.equal(grantFromFrontendUrl("https://m.test/", "x"), null);
});

test("recording status from room metadata", () => {
  assert.equal(recordingFromMetadata(JSON.stringify({ slug: "a", recording_status: "recording" })), true);
  assert.equal(recordingFromMetadata(JSON.stringify({ slug: "a" })), false);
  assert.equal(recordingFromMetadata(""), null);
  assert.equal(recordingFromMetadata("{oops"), null);
});

test("legacy chat packets", () => {
  const encode = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));
  assert.deepEqual(legacyChatText(encode({ id: "1", message: "Anne : bonjour" })), {
    id: "1",
    text: "Anne : bonjour",
  });
  assert.equal(legacyChatText(encode({ id: "1", message: "x", ignoreLegacy: true })), null);
  assert.equal(legacyChatText(new TextEncoder().encode("not json")), null);
});

test("chat text is trimmed and never blank", () => {
  assert.equal(chatToSend("  salut "), "salut");
  assert.equal(chatToSend(" \n"), null);
  assert.equal(chatToSend("x".repeat(5000))?.length, 4000);
});

test("disconnections", () => {
  assert.equal(endKind(1), "left");
  assert.equal(endKind(5), "ended");
  assert.equal(endKind(undefined), "lost");
});

test("the bridge and agents have no tile", () => {
  assert.equal(isShown("visio-bridge", false), false);
  assert.equal(isShown("guest-1", true), false);
  assert.equal(isShown("@anne:test", false), true);
});

test("French and English have the same texts", () => {
  assert.deepEqual(Object.keys(TEXTS.en).sort(), Object.keys(TEXTS.fr).sort());
});
