import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { signJson } from "../../src/federation/json-signing.js";
import { KeyRing, type ServerKeyFetcher } from "../../src/federation/key-ring.js";
import {
  KeyDocumentError,
  ServerKeys,
  validateServerKeyDocument,
} from "../../src/federation/server-keys.js";
import { generateSigningKey, type SigningKey } from "../../src/federation/signing-key.js";

const HOUR = 3_600_000;
const REMOTE = "remote.example";
const NOTARY = "notary.example";

/** A server's key document as it would publish it, valid for `validityMs` from `now`. */
function keyDocument(
  serverName: string,
  key: SigningKey,
  now: number,
  validityMs = 24 * HOUR,
  oldKeys: Record<string, { key: string; expired_ts: number }> = {},
): Record<string, unknown> {
  const keys = new ServerKeys({
    serverName,
    signingKey: () => key,
    oldKeys,
    validityMs,
    now: () => now,
  });
  return { ...keys.document() };
}

/** A fetcher serving documents from tables, counting every call. */
class FakeFetcher implements ServerKeyFetcher {
  readonly direct = new Map<string, () => unknown>();
  readonly notary = new Map<string, (serverName: string) => unknown>();
  readonly calls: string[] = [];

  async fetchServerKeys(serverName: string): Promise<unknown> {
    this.calls.push(`direct ${serverName}`);
    const serve = this.direct.get(serverName);
    if (!serve) throw new Error(`${serverName} is unreachable`);
    return serve();
  }

  async queryNotary(notary: string, serverName: string): Promise<unknown> {
    this.calls.push(`notary ${notary} ${serverName}`);
    const serve = this.notary.get(notary);
    if (!serve) throw new Error(`${notary} is unreachable`);
    return serve(serverName);
  }
}

function setup(options: { notaryKeys?: Record<string, string> | "fetch" } = {}) {
  const clock = { now: 1_700_000_000_000 };
  const fetcher = new FakeFetcher();
  const trustedKeyServers =
    options.notaryKeys === undefined
      ? []
      : options.notaryKeys === "fetch"
        ? [{ server_name: NOTARY }]
        : [{ server_name: NOTARY, verify_keys: options.notaryKeys }];
  const ring = new KeyRing({
    fetcher,
    trustedKeyServers,
    now: () => clock.now,
    retryIntervalMs: 30_000,
  });
  return { clock, fetcher, ring };
}

describe("KeyRing", () => {
  it("fetches a server's keys once and caches them", async () => {
    const { clock, fetcher, ring } = setup();
    const key = generateSigningKey();
    fetcher.direct.set(REMOTE, () => keyDocument(REMOTE, key, clock.now));
    const found = await Promise.all(
      Array.from({ length: 5 }, () => ring.getVerifyKey(REMOTE, key.keyId)),
    );
    assert.ok(found.every((k) => k?.equals(found[0]!)));
    clock.now += HOUR;
    assert.ok(await ring.getVerifyKey(REMOTE, key.keyId));
    assert.deepEqual(fetcher.calls, [`direct ${REMOTE}`]);
  });

  it("refetches when valid_until_ts has passed, and after 7 days at most", async () => {
    const { clock, fetcher, ring } = setup();
    const key = generateSigningKey();
    let validity = 2 * HOUR;
    fetcher.direct.set(REMOTE, () => keyDocument(REMOTE, key, clock.now, validity));
    await ring.getVerifyKey(REMOTE, key.keyId);
    clock.now += 2 * HOUR + 1;
    assert.ok(await ring.getVerifyKey(REMOTE, key.keyId));
    assert.equal(fetcher.calls.length, 2);

    validity = 30 * 24 * HOUR;
    clock.now += 2 * HOUR + 1;
    await ring.getVerifyKey(REMOTE, key.keyId);
    assert.equal(fetcher.calls.length, 3);
    clock.now += 7 * 24 * HOUR - 1;
    await ring.getVerifyKey(REMOTE, key.keyId);
    assert.equal(fetcher.calls.length, 3, "still cached just before 7 days");
    clock.now += 2;
    await ring.getVerifyKey(REMOTE, key.keyId);
    assert.equal(fetcher.calls.length, 4, "refetched after 7 days");
  });

  it("refetches for an unknown key id, at most once per retry interval", async () => {
    const { clock, fetcher, ring } = setup();
    const first = generateSigningKey();
    let current = first;
    fetcher.direct.set(REMOTE, () => keyDocument(REMOTE, current, clock.now));
    assert.ok(await ring.getVerifyKey(REMOTE, first.keyId));
    assert.equal(await ring.getVerifyKey(REMOTE, "ed25519:unknown"), undefined);
    assert.equal(fetcher.calls.length, 1, "quiet period right after a fetch");

    // The server rotates its key; a request names the new key id.
    const second = generateSigningKey();
    current = second;
    clock.now += 30_000;
    assert.ok(await ring.getVerifyKey(REMOTE, second.keyId));
    assert.equal(fetcher.calls.length, 2);
    // The first key stays usable until its own document expires.
    assert.ok(await ring.getVerifyKey(REMOTE, first.keyId));
    assert.equal(fetcher.calls.length, 2);
  });

  it("caches failures briefly and keeps valid keys through them", async () => {
    const { clock, fetcher, ring } = setup();
    const key = generateSigningKey();
    assert.equal(await ring.getVerifyKey(REMOTE, key.keyId), undefined);
    assert.equal(await ring.getVerifyKey(REMOTE, key.keyId), undefined);
    assert.equal(fetcher.calls.length, 1);

    clock.now += 30_000;
    fetcher.direct.set(REMOTE, () => keyDocument(REMOTE, key, clock.now));
    assert.ok(await ring.getVerifyKey(REMOTE, key.keyId));
    assert.equal(fetcher.calls.length, 2);

    fetcher.direct.delete(REMOTE);
    clock.now += 60_000;
    assert.equal(await ring.getVerifyKey(REMOTE, "ed25519:other"), undefined);
    assert.equal(fetcher.calls.length, 3);
    assert.ok(await ring.getVerifyKey(REMOTE, key.keyId), "a failed fetch evicts nothing");
  });

  it("rejects documents that fail validation", async () => {
    const key = generateSigningKey();
    const impostor = generateSigningKey();
    const now = 1_700_000_000_000;
    const good = keyDocument(REMOTE, key, now);
    const forged = signJson({ ...good, signatures: {} }, REMOTE, key.keyId, impostor.privateKey);
    const second = generateSigningKey();
    const twoKeys = {
      ...good,
      signatures: undefined,
      verify_keys: {
        [key.keyId]: { key: key.publicKeyBase64 },
        [second.keyId]: { key: second.publicKeyBase64 },
      },
    };
    const signedOnce = signJson(twoKeys, REMOTE, key.keyId, key.privateKey);
    // One good self-signature and one bad one by a listed key: refused (Synapse too).
    const oneBad = signJson(signedOnce, REMOTE, second.keyId, impostor.privateKey);
    const bothGood = signJson(signedOnce, REMOTE, second.keyId, second.privateKey);
    assert.equal(validateServerKeyDocument(bothGood, REMOTE, now).size, 2);
    const documents: [string, unknown][] = [
      ["for another server", keyDocument("other.example", key, now)],
      ["expired", keyDocument(REMOTE, key, now, -1)],
      ["signed by the wrong key", forged],
      ["with one bad self-signature", oneBad],
      ["unsigned", { ...good, signatures: {} }],
      ["tampered", { ...good, valid_until_ts: (good.valid_until_ts as number) + 1 }],
      ["without keys", { ...good, verify_keys: {} }],
      ["not an object", [good]],
      ["without valid_until_ts", { ...good, valid_until_ts: undefined }],
    ];
    for (const [label, document] of documents) {
      assert.throws(
        () => validateServerKeyDocument(document, REMOTE, now),
        KeyDocumentError,
        label,
      );
      const { fetcher, ring } = setup();
      fetcher.direct.set(REMOTE, () => document);
      assert.equal(await ring.getVerifyKey(REMOTE, key.keyId), undefined, label);
    }
    assert.equal(
      validateServerKeyDocument(good, REMOTE, now).get(key.keyId)?.expiresAt,
      now + 24 * HOUR,
    );
  });

  it("never accepts old_verify_keys for requests", async () => {
    const { clock, fetcher, ring } = setup();
    const key = generateSigningKey();
    const old = generateSigningKey();
    const oldKeys = { [old.keyId]: { key: old.publicKeyBase64, expired_ts: 1 } };
    fetcher.direct.set(REMOTE, () => keyDocument(REMOTE, key, clock.now, HOUR, oldKeys));
    assert.equal(await ring.getVerifyKey(REMOTE, old.keyId), undefined);
    assert.ok(await ring.getVerifyKey(REMOTE, key.keyId));
  });
});

describe("KeyRing through a notary", () => {
  const notaryKey = generateSigningKey();
  const viaNotary = (document: Record<string, unknown>) =>
    signJson(document, NOTARY, notaryKey.keyId, notaryKey.privateKey);

  it("asks the notary when the server cannot be reached", async () => {
    const { clock, fetcher, ring } = setup({
      notaryKeys: { [notaryKey.keyId]: notaryKey.publicKeyBase64 },
    });
    const key = generateSigningKey();
    fetcher.notary.set(NOTARY, (server) => ({
      server_keys: [viaNotary(keyDocument(server, key, clock.now))],
    }));
    assert.ok(await ring.getVerifyKey(REMOTE, key.keyId));
    assert.deepEqual(fetcher.calls, [`direct ${REMOTE}`, `notary ${NOTARY} ${REMOTE}`]);
  });

  it("needs both the server's and the notary's signature", async () => {
    const key = generateSigningKey();
    const stranger = generateSigningKey();
    const answers: [string, (now: number) => unknown][] = [
      ["not signed by the notary", (now) => ({ server_keys: [keyDocument(REMOTE, key, now)] })],
      [
        "signed by another notary key",
        (now) => ({
          server_keys: [
            signJson(keyDocument(REMOTE, key, now), NOTARY, notaryKey.keyId, stranger.privateKey),
          ],
        }),
      ],
      [
        "not signed by the server",
        (now) => ({
          server_keys: [viaNotary({ ...keyDocument(REMOTE, key, now), signatures: {} })],
        }),
      ],
      ["not a list", (now) => ({ server_keys: viaNotary(keyDocument(REMOTE, key, now)) })],
      [
        "for another server",
        (now) => ({ server_keys: [viaNotary(keyDocument("x.example", key, now))] }),
      ],
    ];
    for (const [label, answer] of answers) {
      const { clock, fetcher, ring } = setup({
        notaryKeys: { [notaryKey.keyId]: notaryKey.publicKeyBase64 },
      });
      fetcher.notary.set(NOTARY, () => answer(clock.now));
      assert.equal(await ring.getVerifyKey(REMOTE, key.keyId), undefined, label);
    }
  });

  it("fetches the notary's own keys when none are configured", async () => {
    const { clock, fetcher, ring } = setup({ notaryKeys: "fetch" });
    const key = generateSigningKey();
    fetcher.direct.set(NOTARY, () => keyDocument(NOTARY, notaryKey, clock.now));
    fetcher.notary.set(NOTARY, (server) => ({
      server_keys: [viaNotary(keyDocument(server, key, clock.now))],
    }));
    assert.ok(await ring.getVerifyKey(REMOTE, key.keyId));
    assert.deepEqual(fetcher.calls, [
      `direct ${REMOTE}`,
      `notary ${NOTARY} ${REMOTE}`,
      `direct ${NOTARY}`,
    ]);
  });

  it("refuses a malformed configured notary key at construction", () => {
    assert.throws(
      () =>
        new KeyRing({
          fetcher: new FakeFetcher(),
          trustedKeyServers: [{ server_name: NOTARY, verify_keys: { "ed25519:x": "short" } }],
        }),
      /trusted_key_servers/,
    );
  });
});
