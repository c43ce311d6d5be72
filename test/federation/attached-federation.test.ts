/**
 * Two attached mxcd instances for two homeservers (hs1.test, and
 * hs2.test:8448, a server name with a port, which mxcd keeps as it is)
 * federate media with each way of holding a key (docs/attached.md
 * "Federation keys"):
 * - "homeserver key": mxcd's `signing_key_path` is the homeserver's own
 *   Synapse `signing.key`;
 * - "own key": mxcd has its own key (`mxcd signing-key generate`) and the
 *   homeserver publishes the combined file (`mxcd signing-key combine`).
 *
 * Each mxcd sits behind a front for its server name that sends federation
 * media to it and keeps `/_matrix/key/v2/*` on the homeserver, whose key
 * document is written from the spec (support/homeserver-keys.ts). The fronts
 * record who signed each request and what it got, so each test can show the
 * path taken. On SQLite and PostgreSQL.
 */
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import { ConfigError, parseConfigText } from "../../src/config/load-config.js";
import type { Engine } from "../../src/db/database.js";
import { runCli } from "../support/cli.js";
import { forEachEngine } from "../support/databases.js";
import { FederationFront } from "../support/federation-front.js";
import {
  HomeserverKeys,
  newSynapseKeyLine,
  readSynapseKeyFile,
  xMatrixHeader,
} from "../support/homeserver-keys.js";
import type { HttpClient } from "../support/http-client.js";
import { download, uploadBytes } from "../support/media.js";
import { ScriptedHomeserver } from "../support/scripted-homeserver.js";
import { startTestServer, type TestServer } from "../support/test-server.js";

/**
 * How a side holds mxcd's key: the homeserver's own file; mxcd's own key
 * combined into the file the homeserver publishes; or mxcd's own key that
 * the homeserver was never told about (combine skipped).
 */
type KeyOption = "homeserver key" | "own key" | "own key, not published";

/** One server name: its scripted homeserver, key document, front and attached mxcd. */
interface Side {
  readonly name: string;
  readonly hs: ScriptedHomeserver;
  readonly front: FederationFront;
  readonly mxcd: TestServer;
  /** A user of this homeserver, talking to this mxcd. */
  readonly user: HttpClient;
  readonly userToken: string;
  /** The key id mxcd signs with (first line of its `signing_key_path`). */
  readonly mxcdKeyId: string;
  /** The key file mxcd signs with. */
  readonly mxcdKeyPath: string;
}

/**
 * Writes the homeserver's key file and mxcd's with the `mxcd signing-key`
 * commands, as an admin following docs/attached.md would.
 */
async function keyFiles(dir: string, option: KeyOption) {
  const homeserverKey = join(dir, "homeserver.signing.key");
  if (option === "homeserver key") {
    // Two lines, as a Synapse file can have: mxcd must sign with the first, like Synapse.
    writeFileSync(homeserverKey, newSynapseKeyLine() + newSynapseKeyLine(), { mode: 0o600 });
    return { mxcdKey: homeserverKey, published: homeserverKey };
  }
  writeFileSync(homeserverKey, newSynapseKeyLine(), { mode: 0o600 });
  const mxcdKey = join(dir, "mxcd.signing.key");
  await cli(["signing-key", "generate", "-o", mxcdKey]);
  if (option === "own key, not published") return { mxcdKey, published: homeserverKey };
  const combined = join(dir, "homeserver.signing.key.combined");
  await cli([
    "signing-key",
    "combine",
    "--homeserver-key",
    homeserverKey,
    "--mxcd-key",
    mxcdKey,
    "-o",
    combined,
  ]);
  return { mxcdKey, published: combined };
}

async function cli(args: string[]): Promise<void> {
  const result = await runCli(args);
  assert.equal(result.code, 0, result.stderr);
}

/** Two sides that resolve each other's server names to their fronts. */
async function startWorld(engine: Engine, options: Record<string, KeyOption>) {
  // Everything started, stopped in reverse order (also when a start fails,
  // so a failed set-up cannot keep the test process alive).
  const started: (() => Promise<void>)[] = [];
  const stop = async () => {
    for (const stopOne of started.splice(0).reverse()) await stopOne();
  };
  try {
    const prepared = [];
    for (const [name, option] of Object.entries(options)) {
      const dir = mkdtempSync(join(tmpdir(), `mxcd-attached-fed-${name}-`));
      const { mxcdKey, published } = await keyFiles(dir, option);
      // The homeserver started with `published` as its signing_key_path.
      const front = await FederationFront.start(new HomeserverKeys(name, published));
      started.push(() => front.stop());
      const hs = await ScriptedHomeserver.start();
      started.push(() => hs.stop());
      prepared.push({ name, mxcdKey, front, hs });
    }
    const resolvers = Object.fromEntries(prepared.map((p) => [p.name, p.front.baseUrl]));
    const sides: Record<string, Side> = {};
    for (const { name, mxcdKey, front, hs } of prepared) {
      const mxcd = await startTestServer(engine, {
        mode: "attached",
        server_name: name,
        homeserver: { base_url: hs.baseUrl, admin_api: "synapse" },
        signing_key_path: mxcdKey,
        federation_custom_resolvers: resolvers,
        ip_range_whitelist: ["127.0.0.0/8"],
      });
      started.push(() => mxcd.stop());
      front.mxcd = mxcd.baseUrl;
      const userToken = `syt_user_${name}`;
      hs.addToken(userToken, { userId: `@user:${name}`, deviceId: "DEV" });
      sides[name] = {
        name,
        hs,
        front,
        mxcd,
        user: mxcd.http.withToken(userToken),
        userToken,
        mxcdKeyId: readSynapseKeyFile(mxcdKey)[0]!.keyId,
        mxcdKeyPath: mxcdKey,
      };
    }
    return { sides, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

async function png(colour: string): Promise<Buffer> {
  const image = sharp({ create: { width: 300, height: 200, channels: 3, background: colour } });
  return image.png().toBuffer();
}

const H1 = "hs1.test";
const H2 = "hs2.test:8448";
const FEDERATION_DOWNLOAD = "/_matrix/federation/v1/media/download/";

/**
 * A user of `reader` thumbnails, then downloads, media a user of `uploader`
 * uploaded, through the reader's mxcd; the uploader's front saw one signed
 * federation download for it, from the reader's server name with the key
 * the reader's mxcd holds, and the reader's homeserver handed out its key
 * document.
 */
async function fetchAcross(uploader: Side, reader: Side, colour: string) {
  const bytes = await png(colour);
  const id = await uploadBytes(uploader.user, bytes, {
    contentType: "image/png",
    filename: "a.png",
  });
  const thumb = await download(
    reader.mxcd.baseUrl,
    `/_matrix/client/v1/media/thumbnail/${uploader.name}/${id}?width=32&height=32&method=crop`,
    { token: reader.userToken },
  );
  assert.equal(thumb.status, 200, thumb.bytes.toString());
  assert.equal(thumb.headers.get("content-type"), "image/png");
  const meta = await sharp(thumb.bytes).metadata();
  assert.deepEqual([meta.width, meta.height], [32, 32]);
  const got = await download(
    reader.mxcd.baseUrl,
    `/_matrix/client/v1/media/download/${uploader.name}/${id}`,
    { token: reader.userToken },
  );
  assert.equal(got.status, 200);
  assert.deepEqual(got.bytes, bytes);
  assert.equal(got.headers.get("content-disposition"), "inline; filename=a.png");

  const fetched = uploader.front.seen("mxcd", `${FEDERATION_DOWNLOAD}${id}`);
  assert.equal(fetched.length, 1, "one federation download, then the cache");
  const { origin, destination, key, status } = fetched[0]!;
  assert.deepEqual(
    { origin, destination, key, status },
    { origin: reader.name, destination: uploader.name, key: reader.mxcdKeyId, status: 200 },
  );
  // The uploader's mxcd checked the signature against the reader's homeserver's
  // key document (fetched once, then cached).
  assert.ok(reader.front.keys.served >= 1, "the reader's homeserver published its keys");
}

forEachEngine("two attached mxcd instances federate media", (engine) => {
  for (const option of ["homeserver key", "own key"] as const) {
    describe(`each mxcd signs with the ${option}`, () => {
      let world: Awaited<ReturnType<typeof startWorld>>;
      let hs1: Side;
      let hs2: Side;
      before(async () => {
        world = await startWorld(engine, { [H1]: option, [H2]: option });
        hs1 = world.sides[H1]!;
        hs2 = world.sides[H2]!;
      });
      after(async () => {
        await world?.stop();
      });

      it("mxcd signs with the key in signing_key_path, which the homeserver publishes", () => {
        for (const side of [hs1, hs2]) {
          const published = side.front.keys.keys.map((k) => k.keyId);
          assert.equal(published.length, 2);
          // Option (a): the first of the homeserver's keys; (b): its key first, then mxcd's.
          if (option === "homeserver key") assert.equal(published[0], side.mxcdKeyId);
          else {
            assert.match(published[0]!, /^ed25519:a_/);
            assert.equal(published[1], side.mxcdKeyId);
            assert.match(side.mxcdKeyId, /^ed25519:mxcd_/);
          }
        }
      });

      it("a user of hs2 thumbnails and downloads media uploaded on hs1 through mxcd2", async () => {
        await fetchAcross(hs1, hs2, "#336699");
      });

      it("a user of hs1 thumbnails and downloads media uploaded on hs2 through mxcd1", async () => {
        await fetchAcross(hs2, hs1, "#993366");
      });

      it("refuses a request that names another server as destination (401)", async () => {
        const id = await uploadBytes(hs1.user, "for hs1 only", { contentType: "text/plain" });
        const uri = `${FEDERATION_DOWNLOAD}${id}`;
        // Signed by hs2 with the key its homeserver publishes, so only the
        // destination differs between the two requests.
        const key = readSynapseKeyFile(hs2.mxcdKeyPath)[0]!;
        const send = (destination: string) =>
          fetch(new URL(uri, hs1.front.baseUrl), {
            headers: {
              authorization: xMatrixHeader({ uri, origin: H2, destination, key }),
            },
          });
        const wrong = await send("hs3.test");
        assert.equal(wrong.status, 401);
        const body = (await wrong.json()) as { errcode: string; error: string };
        assert.equal(body.errcode, "M_UNAUTHORIZED");
        assert.match(body.error, /destination/i);
        const right = await send(H1);
        assert.equal(right.status, 200, "the same request naming hs1.test is served");
        await right.arrayBuffer();
      });
    });
  }

  describe("an mxcd key the homeserver does not publish", () => {
    let world: Awaited<ReturnType<typeof startWorld>>;
    let hs1: Side;
    let hs2: Side;
    before(async () => {
      // hs1 combined its file; hs2's admin generated mxcd's key but skipped `combine`.
      world = await startWorld(engine, {
        [H1]: "own key",
        [H2]: "own key, not published",
      });
      hs1 = world.sides[H1]!;
      hs2 = world.sides[H2]!;
    });
    after(async () => {
      await world?.stop();
    });

    it("makes mxcd1 refuse mxcd2's requests; the hs2 user gets a Matrix error, not a 500", async () => {
      const id = await uploadBytes(hs1.user, "unreachable", { contentType: "text/plain" });
      const res = await hs2.user.get(`/_matrix/client/v1/media/download/${H1}/${id}`);
      assert.equal(res.status, 502, res.text);
      assert.equal(res.body.errcode, "M_UNKNOWN");
      assert.equal(typeof res.body.error, "string");
      // mxcd1 looked the key up in hs2's key document, did not find it, refused.
      assert.ok(hs2.front.keys.served >= 1, "mxcd1 fetched hs2's key document");
      const refused = hs1.front.seen("mxcd", `${FEDERATION_DOWNLOAD}${id}`);
      assert.deepEqual(
        refused.map((r) => [r.origin, r.key, r.status]),
        [[H2, hs2.mxcdKeyId, 401]],
      );
      // A refusal is no reason to try the legacy unauthenticated download.
      assert.deepEqual(hs1.front.seen("mxcd", "/_matrix/media/"), []);
    });

    it("while mxcd1's own requests, with a published key, are served by mxcd2", async () => {
      await fetchAcross(hs2, hs1, "#669933");
    });
  });
});

it("refuses old_signing_keys in attached mode: the homeserver publishes the keys, not mxcd", () => {
  const attached =
    'server_name: "hs1.test"\nmode: attached\nhomeserver: { base_url: "http://hs:8008" }\n';
  const old =
    'old_signing_keys: { "ed25519:mxcd_old": { key: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", expired_ts: 1 } }\n';
  assert.throws(
    () => parseConfigText(`${attached}${old}`),
    (error: unknown) =>
      error instanceof ConfigError &&
      error.problems.some((p) => /^old_signing_keys: does nothing with mode: attached/.test(p)),
  );
  assert.equal(parseConfigText(attached).mode, "attached", "the same config without them loads");
  // Standalone mxcd publishes its own key document, old keys included.
  assert.doesNotThrow(() => parseConfigText(`server_name: "hs1.test"\n${old}`));
});
