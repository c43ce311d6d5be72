/**
 * Hostile input against attached mode's HTTP surface, end to end: a real
 * attached mxcd, the scripted homeserver behind a small "front" that can
 * answer whoami the way a broken or hostile homeserver (or what sits in
 * front of one) might, and raw sockets where a normal client would refuse
 * to send the bytes. Every refusal must be a Matrix error with the right
 * status — never a 500, never `M_UNKNOWN_TOKEN` for a homeserver failure —
 * and the homeserver's counters show what was (not) asked.
 *
 * The unit tests of the pieces are in test/homeserver/; this file covers the
 * HTTP path. On SQLite and PostgreSQL.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import { type AddressInfo, connect, createServer as createTcpServer } from "node:net";
import { after, afterEach, before, it } from "node:test";
import { forEachEngine } from "./support/databases.js";
import type { HttpClient, HttpResponse } from "./support/http-client.js";
import { mediaIdOf, uploadBytes } from "./support/media.js";
import { metric } from "./support/metrics.js";
import { ScriptedHomeserver } from "./support/scripted-homeserver.js";
import { startTestServer, TEST_SERVER_NAME, type TestServer } from "./support/test-server.js";

const S = TEST_SERVER_NAME;
const WHOAMI = "/_matrix/client/v3/account/whoami";
/** `access_token_cache.max_entries` of the main server. */
const MAX_ENTRIES = 50;
/**
 * Distinct bad tokens sent against MAX_ENTRIES: four times the bound is
 * enough for an unbounded cache to show (the LRU's bound holds at any count;
 * 2,000 took 10.8 of the file's 14.3 s on SQLite and proved nothing more).
 */
const BAD_TOKENS = 4 * MAX_ENTRIES;

/** What the front answers instead of the homeserver (undefined: pass the request on). */
type Script = (request: IncomingMessage, response: ServerResponse) => void;

/**
 * A listener between mxcd and the scripted homeserver: passes requests on,
 * or answers them with `script`. Counts every request it receives.
 */
class HomeserverFront {
  readonly #server: Server;
  script: Script | undefined;
  received = 0;

  private constructor(target: string) {
    const { port } = new URL(target);
    this.#server = createServer((request, response) => {
      this.received += 1;
      if (this.script) return this.script(request, response);
      const upstream = httpRequest(
        {
          host: "127.0.0.1",
          port,
          path: request.url,
          method: request.method,
          headers: request.headers,
        },
        (answer) => {
          response.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(response);
        },
      );
      upstream.on("error", () => response.destroy());
      request.pipe(upstream);
    });
  }

  static async start(target: string): Promise<HomeserverFront> {
    const front = new HomeserverFront(target);
    front.#server.listen(0, "127.0.0.1");
    await once(front.#server, "listening");
    return front;
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.#server.closeAllConnections();
    this.#server.close();
    await once(this.#server, "close");
  }
}

/** A TCP listener that must see no connection (a redirect's target). */
async function connectionCounter() {
  let connections = 0;
  const server = createTcpServer((socket) => {
    connections += 1;
    socket.destroy();
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    get connections() {
      return connections;
    },
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/**
 * Sends `head` (request line and headers, as bytes) on a fresh connection
 * and reads the answer to the end: for bytes fetch will not send.
 */
function rawRequest(baseUrl: string, head: Buffer): Promise<{ status: number; body: any }> {
  const { port } = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), "127.0.0.1", () => socket.end(head));
    const chunks: Buffer[] = [];
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    socket.on("error", reject);
    socket.on("end", () => {
      const text = Buffer.concat(chunks).toString("latin1");
      const split = text.indexOf("\r\n\r\n");
      const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(text)?.[1]);
      let body = text.slice(split + 4);
      if (/\r\ntransfer-encoding: chunked/i.test(text.slice(0, split))) body = unchunk(body);
      try {
        resolve({ status, body: JSON.parse(body) });
      } catch {
        resolve({ status, body });
      }
    });
  });
}

function unchunk(text: string): string {
  let out = "";
  for (let at = 0; ; ) {
    const eol = text.indexOf("\r\n", at);
    const size = Number.parseInt(text.slice(at, eol), 16);
    if (!size) return out;
    out += text.slice(eol + 2, eol + 2 + size);
    at = eol + 2 + size + 2;
  }
}

/** A GET of `path` with extra header lines, as raw bytes. */
function rawGet(baseUrl: string, path: string, headerLines: Buffer[] = []) {
  const crlf = Buffer.from("\r\n");
  const head = Buffer.concat([
    Buffer.from(`GET ${path} HTTP/1.1\r\nHost: mxcd.test\r\nConnection: close\r\n`),
    ...headerLines.flatMap((line) => [line, crlf]),
    crlf,
  ]);
  return rawRequest(baseUrl, head);
}

/** The Matrix error shape with this status and errcode. */
function assertRefused(res: { status: number; body: any }, status: number, errcode: string) {
  const detail = JSON.stringify(res.body).slice(0, 300);
  assert.equal(res.status, status, detail);
  assert.equal(typeof res.body, "object", detail);
  assert.equal(res.body.errcode, errcode, detail);
  assert.equal(typeof res.body.error, "string", detail);
}

/** Polls until `condition` holds (an observable event, not a fixed sleep). */
async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 2_000 && !condition(); i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(condition(), `timed out waiting for ${what}`);
}

function json(response: ServerResponse, status: number, body: string, type = "application/json") {
  response.writeHead(status, { "content-type": type });
  response.end(body);
}

forEachEngine("attached mode: hostile input over HTTP", (engine) => {
  let hs: ScriptedHomeserver;
  let front: HomeserverFront;
  /** request_timeout 10s, failure_threshold high, max_entries MAX_ENTRIES. */
  let server: TestServer;
  /** request_timeout 2s, failure_threshold 3: for time-outs and the breaker. */
  let strict: TestServer;
  let serial = 0;
  let mediaId: string;

  const tokenFor = (localpart: string, extra: { admin?: boolean } = {}) => {
    const token = `syt_${localpart}_${++serial}_${Math.random().toString(36).slice(2)}`;
    hs.addToken(token, { userId: `@${localpart}:${S}`, deviceId: "DEV", ...extra });
    return token;
  };
  const downloadPath = (id: string, query = "") =>
    `/_matrix/client/v1/media/download/${S}/${id}${query}`;
  /** Requests the homeserver side saw (front and scripted homeserver). */
  const asked = () => ({ front: front.received, hs: hs.total });
  const ownerOf = async (http: HttpClient, contentUri: string) => {
    const admin = http.withToken(tokenFor("admin", { admin: true }));
    const info = await admin.get(`/_synapse/admin/v1/media/${S}/${mediaIdOf(contentUri)}`);
    assert.equal(info.status, 200, info.text);
    return info.body.media_info.user_id as string;
  };
  const upload = (http: HttpClient, query = "") =>
    http.request("POST", `/_matrix/media/v3/upload${query}`, { rawBody: "hostile" });

  before(async () => {
    hs = await ScriptedHomeserver.start();
    front = await HomeserverFront.start(hs.baseUrl);
    const cache = { ttl: "10m", negative_ttl: "10m", admin_ttl: "10m" };
    server = await startTestServer(engine, {
      mode: "attached",
      homeserver: {
        base_url: front.baseUrl,
        admin_api: "synapse",
        request_timeout: "10s",
        failure_threshold: 1000,
      },
      access_token_cache: { ...cache, max_entries: MAX_ENTRIES },
    });
    strict = await startTestServer(engine, {
      mode: "attached",
      homeserver: {
        base_url: front.baseUrl,
        admin_api: "synapse",
        request_timeout: "2s",
        failure_threshold: 3,
      },
      access_token_cache: cache,
    });
    mediaId = await uploadBytes(server.http.withToken(tokenFor("owner")), "hostile media");
  });
  after(async () => {
    await server?.stop();
    await strict?.stop();
    await front?.stop();
    await hs?.stop();
  });
  afterEach(() => {
    front.script = undefined;
  });

  it("refuses a 100 KB token in the header or the query with a Matrix error, asking nobody", async () => {
    const before = asked();
    const huge = "a".repeat(100_000);
    // Larger than Node's header limit: refused by the HTTP parser, 431.
    assertRefused(
      await rawGet(server.baseUrl, downloadPath(mediaId), [
        Buffer.from(`Authorization: Bearer ${huge}`),
      ]),
      431,
      "M_UNKNOWN",
    );
    assertRefused(
      await rawGet(server.baseUrl, downloadPath(mediaId, `?access_token=${huge}`)),
      431,
      "M_UNKNOWN",
    );
    // Under Node's limit but longer than any homeserver's token: 401 from mxcd itself.
    const long = "b".repeat(5_000);
    const viaHeader = await server.http.withToken(long).get(downloadPath(mediaId));
    assertRefused(viaHeader, 401, "M_UNKNOWN_TOKEN");
    assert.equal(viaHeader.body.soft_logout, false);
    assertRefused(
      await server.http.get(downloadPath(mediaId, `?access_token=${long}`)),
      401,
      "M_UNKNOWN_TOKEN",
    );
    assert.deepEqual(asked(), before, "the homeserver was not asked");
  });

  it("refuses tokens with control characters, non-ASCII or spaces without asking the homeserver", async () => {
    const before = asked();
    for (const token of [
      "ab%01cd",
      "ab%00",
      "ab%09cd",
      "ab%0D%0Acd",
      "ab%20cd",
      "%E2%82%AC",
      "ab%C3%A9",
    ]) {
      const res = await server.http.get(downloadPath(mediaId, `?access_token=${token}`));
      assertRefused(res, 401, "M_UNKNOWN_TOKEN");
    }
    // In the header: a control character is refused by the HTTP parser (400);
    // a non-ASCII byte reaches mxcd (as latin1) and is refused there; a space
    // splits the header, which then carries no token.
    const header = (bytes: number[]) =>
      rawGet(server.baseUrl, downloadPath(mediaId), [
        Buffer.concat([Buffer.from("Authorization: Bearer ab"), Buffer.from(bytes)]),
      ]);
    assertRefused(await header([0x01, 0x63]), 400, "M_UNKNOWN");
    assertRefused(await header([0xc3, 0xa9]), 401, "M_UNKNOWN_TOKEN");
    assertRefused(await header([0x20, 0x63, 0x64]), 401, "M_MISSING_TOKEN");
    assert.deepEqual(asked(), before, "the homeserver was not asked");
  });

  it("does not let unsendable tokens open the breaker (failure_threshold 3)", async () => {
    const mine = await uploadBytes(strict.http.withToken(tokenFor("breaker")), "breaker");
    for (let i = 0; i < 5; i++) {
      // "€" cannot go into a request header: before the fix, each was a 502
      // counted as a homeserver failure.
      const res = await strict.http.get(downloadPath(mine, `?access_token=ab%E2%82%AC${i}`));
      assertRefused(res, 401, "M_UNKNOWN_TOKEN");
    }
    const cold = await strict.http.withToken(tokenFor("after")).get(downloadPath(mine));
    assert.equal(cold.status, 200, `a cold token still reaches the homeserver: ${cold.text}`);
  });

  it("checks the header's token when the query carries another, and never sends the query's", async () => {
    const alice = tokenFor("alice");
    const bob = tokenFor("bob");
    const both = server.http.withToken(alice);
    const res = await upload(both, `?access_token=${bob}`);
    assert.equal(res.status, 200, res.text);
    assert.equal(await ownerOf(server.http, res.body.content_uri), `@alice:${S}`);
    // A refused header token is not rescued by a good query token.
    const bogus = await server.http
      .withToken("syt_never_issued_header")
      .get(downloadPath(mediaId, `?access_token=${bob}`));
    assertRefused(bogus, 401, "M_UNKNOWN_TOKEN");
    const sent = hs.seen.map((headers) => headers.authorization);
    assert.ok(!sent.includes(`Bearer ${bob}`), "bob's token never reached the homeserver");
  });

  it("refuses a masquerade the homeserver refuses, every time, however warm the AS token", async () => {
    const asToken = `as_hostile_${++serial}`;
    const registered = new Set([`@bridged_carol:${S}`]);
    hs.addAppService(asToken, {
      sender: `@_bridge:${S}`,
      userRegexes: [`@bridged_.*:${S}`],
      registered,
    });
    const bridge = server.http.withToken(asToken);
    const own = await upload(bridge);
    assert.equal(own.status, 200, own.text);
    assert.equal(await ownerOf(server.http, own.body.content_uri), `@_bridge:${S}`);

    const as = (userId: string) => `?user_id=${encodeURIComponent(userId)}`;
    for (const victim of [`@victim:${S}`, `@bridged_dave:${S}`]) {
      for (let attempt = 0; attempt < 2; attempt++) {
        const whoami = hs.count(WHOAMI);
        assertRefused(await upload(bridge, as(victim)), 403, "M_FORBIDDEN");
        assertRefused(await bridge.get(downloadPath(mediaId, as(victim))), 403, "M_FORBIDDEN");
        assert.ok(hs.count(WHOAMI) > whoami, `${victim}: the homeserver decided, not a cache`);
      }
    }
    // Allowed and refused masquerades do not leak into each other.
    const carol = await upload(bridge, as(`@bridged_carol:${S}`));
    assert.equal(carol.status, 200, carol.text);
    assert.equal(await ownerOf(server.http, carol.body.content_uri), `@bridged_carol:${S}`);
    assertRefused(await upload(bridge, as(`@victim:${S}`)), 403, "M_FORBIDDEN");
    const admin = server.http.withToken(tokenFor("admin", { admin: true }));
    const victims = await admin.get(
      `/_synapse/admin/v1/users/${encodeURIComponent(`@victim:${S}`)}/media`,
    );
    assert.equal(victims.status, 200, victims.text);
    assert.equal(victims.body.total, 0, "nothing was uploaded as the victim");
  });

  it("acts as whoami's user when an ordinary token sends user_id, and refuses a malformed user_id", async () => {
    const mallory = server.http.withToken(tokenFor("mallory"));
    const res = await upload(mallory, `?user_id=${encodeURIComponent(`@bob:${S}`)}`);
    assert.equal(res.status, 200, res.text);
    assert.equal(await ownerOf(server.http, res.body.content_uri), `@mallory:${S}`);
    const before = asked();
    for (const userId of ["not-a-user", `@${"x".repeat(300)}:${S}`, "@a:b:c:d\u0000"]) {
      const refused = await mallory.get(
        downloadPath(mediaId, `?user_id=${encodeURIComponent(userId)}`),
      );
      assertRefused(refused, 400, "M_INVALID_PARAM");
    }
    assert.deepEqual(asked(), before, "a malformed user_id is refused before asking");
  });

  it("answers 502 M_UNKNOWN (never M_UNKNOWN_TOKEN, never cached) to garbage from the homeserver", async () => {
    const answers: [number, string, string?][] = [
      [200, "not json at all"],
      [200, '{"user_id":'],
      [200, "[]"],
      [200, "null"],
      [200, '"@alice:test.local"'],
      [200, "{}"],
      [200, '{"user_id": 42}'],
      [200, '{"user_id": "not a user id"}'],
      [200, '{"user_id": "@alice:evil.example", "device_id": "X"}'],
      [200, "<html><body>Welcome to nginx!</body></html>", "text/html"],
      [200, ""],
      [401, "<html>401</html>", "text/html"],
      [418, '{"errcode": "M_UNKNOWN_TOKEN", "error": "teapot"}'],
      [404, '{"errcode": "M_UNRECOGNIZED", "error": "no whoami here"}'],
    ];
    const token = tokenFor("garbage");
    const client = server.http.withToken(token);
    for (const [status, body, type] of answers) {
      front.script = (_request, response) => json(response, status, body, type);
      for (let attempt = 0; attempt < 2; attempt++) {
        const received = front.received;
        const res = await client.get(downloadPath(mediaId));
        assertRefused(res, 502, "M_UNKNOWN");
        assert.equal(front.received, received + 1, `${status} ${body}: asked again, not cached`);
      }
    }
    front.script = undefined;
    const res = await client.get(downloadPath(mediaId));
    assert.equal(res.status, 200, `the same token works once the homeserver is sane: ${res.text}`);
  });

  it("reads a huge whoami answer only up to a bound", async () => {
    const cap = 128 * 1024 ** 2;
    for (const declared of [false, true]) {
      let written = 0;
      let closed = false;
      front.script = (_request, response) => {
        response.writeHead(200, {
          "content-type": "application/json",
          ...(declared && { "content-length": String(cap) }),
        });
        const chunk = Buffer.alloc(64 * 1024, 0x61);
        response.once("close", () => {
          closed = true;
        });
        const pump = () => {
          while (!response.destroyed && written < cap) {
            written += chunk.length;
            if (!response.write(chunk)) return void response.once("drain", pump);
          }
          response.end();
        };
        if (!declared) response.write('{"user_id": "');
        pump();
      };
      const res = await server.http.withToken(tokenFor("huge")).get(downloadPath(mediaId));
      assertRefused(res, 502, "M_UNKNOWN");
      await until(() => closed, "mxcd to drop the huge answer");
      // The cap is 1 MiB; what the kernel buffers on loopback comes on top.
      assert.ok(
        written < 32 * 1024 ** 2,
        `${declared}: ${written} bytes written before mxcd let go`,
      );
    }
  });

  it("does not follow a redirect to another host", async () => {
    const elsewhere = await connectionCounter();
    try {
      for (const status of [301, 302, 307, 308]) {
        front.script = (_request, response) => {
          response.writeHead(status, {
            location: `${elsewhere.url}${WHOAMI}`,
            "content-type": "application/json",
          });
          // A body a careless client might take for the answer.
          response.end(JSON.stringify({ user_id: `@alice:${S}` }));
        };
        const res = await server.http.withToken(tokenFor("redirected")).get(downloadPath(mediaId));
        assertRefused(res, 502, "M_UNKNOWN");
      }
      assert.equal(elsewhere.connections, 0, "nobody connected to the redirect's target");
    } finally {
      await elsewhere.stop();
    }
  });

  it(
    "gives up on a trickling whoami answer at request_timeout: 504 M_UNKNOWN",
    { timeout: 60_000 },
    async () => {
      const mine = await uploadBytes(strict.http.withToken(tokenFor("trickle_owner")), "t");
      let closed = false;
      front.script = (_request, response) => {
        response.writeHead(200, { "content-type": "application/json" });
        response.write("{");
        // A byte every 50 ms never looks idle; only the overall deadline ends it.
        const timer = setInterval(() => response.write(" "), 50);
        response.once("close", () => {
          clearInterval(timer);
          closed = true;
        });
      };
      const res = await strict.http.withToken(tokenFor("trickle")).get(downloadPath(mine));
      assertRefused(res, 504, "M_UNKNOWN");
      await until(() => closed, "mxcd to close the trickling connection");
      front.script = undefined;
      // One failure, under the threshold: the next cold token is asked normally.
      const cold = await strict.http.withToken(tokenFor("after_trickle")).get(downloadPath(mine));
      assert.equal(cold.status, 200, cold.text);
    },
  );

  it(`keeps at most max_entries verdicts after ${BAD_TOKENS} distinct bad tokens`, async () => {
    const received = front.received;
    const tokens = Array.from({ length: BAD_TOKENS }, (_, i) => `syt_bad_${i}_${serial}`);
    let next = 0;
    const worker = async () => {
      for (let i = next++; i < tokens.length; i = next++) {
        const res: HttpResponse = await server.http
          .withToken(tokens[i]!)
          .get(downloadPath(mediaId));
        assertRefused(res, 401, "M_UNKNOWN_TOKEN");
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    assert.equal(front.received, received + tokens.length, "each distinct token was asked once");
    const entries = await metric(server.baseUrl, "mxcd_access_token_cache_entries");
    assert.ok(entries > 0, "the gauge counts the cache");
    assert.ok(entries <= MAX_ENTRIES, `${entries} verdicts cached, max_entries ${MAX_ENTRIES}`);
  });
});
