/**
 * The federation front of one server name in attached-mode tests: what a
 * reverse proxy on the federation vhost does (docs/attached.md route
 * table, reference §6). Federation media and legacy media go to that
 * server's mxcd; `/_matrix/key/v2/*` stays on the homeserver, which
 * publishes the key document (HomeserverKeys); anything else is the
 * homeserver's and answers 404 here. `federation_custom_resolvers` of the
 * other side points at it.
 *
 * The request target and every header (Host, Authorization) reach mxcd as
 * they arrived, as nginx's `proxy_pass` without a URI does. Every request is
 * recorded with the X-Matrix parameters it carried and the status it got,
 * so tests can see which path a request took and who signed it.
 */
import { once } from "node:events";
import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import type { AddressInfo } from "node:net";
import { type HomeserverKeys, xMatrixParams } from "./homeserver-keys.js";

/** One request the front answered. */
export interface FrontRequest {
  /** Where it went: mxcd, the homeserver's key document, or nowhere (404). */
  readonly to: "mxcd" | "keys" | "none";
  readonly path: string;
  /** The X-Matrix `origin`, `destination` and `key` it was signed with, if any. */
  readonly origin?: string;
  readonly destination?: string;
  readonly key?: string;
  readonly status: number;
}

const TO_MXCD = /^\/_matrix\/(?:federation\/v1\/media|media)\//;
const KEYS = /^\/_matrix\/key\/v2\/server(?:\/[^/?]*)?(?:\?|$)/;

export class FederationFront {
  readonly #server: Server;
  /** Every request answered, oldest first. */
  readonly requests: FrontRequest[] = [];
  /** mxcd's base URL; set once mxcd has started. */
  mxcd: string | undefined;

  private constructor(readonly keys: HomeserverKeys) {
    this.#server = createServer((request, response) => this.#handle(request, response));
  }

  static async start(keys: HomeserverKeys): Promise<FederationFront> {
    const front = new FederationFront(keys);
    front.#server.listen(0, "127.0.0.1");
    await once(front.#server, "listening");
    return front;
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  /** Requests that went to `to` whose path starts with `prefix`. */
  seen(to: FrontRequest["to"], prefix: string): FrontRequest[] {
    return this.requests.filter((r) => r.to === to && r.path.startsWith(prefix));
  }

  async stop(): Promise<void> {
    this.#server.closeAllConnections();
    this.#server.close();
    await once(this.#server, "close");
  }

  #handle(request: IncomingMessage, response: ServerResponse) {
    const path = request.url ?? "/";
    const signed = xMatrixParams(request.headers.authorization);
    const record = (to: FrontRequest["to"], status: number) =>
      this.requests.push({ to, path, ...signed, status });
    if (KEYS.test(path) && request.method === "GET") {
      record("keys", 200);
      return sendJson(response, 200, this.keys.document());
    }
    if (!TO_MXCD.test(path) || this.mxcd === undefined) {
      record("none", 404);
      return sendJson(response, 404, { errcode: "M_UNRECOGNIZED", error: "Unrecognized request" });
    }
    const upstream = new URL(this.mxcd);
    const forwarded = httpRequest(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: request.method,
        path,
        headers: request.headers,
      },
      (answer) => {
        record("mxcd", answer.statusCode ?? 0);
        response.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(response);
      },
    );
    forwarded.on("error", () => {
      record("mxcd", 502);
      if (!response.headersSent)
        sendJson(response, 502, { errcode: "M_UNKNOWN", error: "bad gateway" });
      else response.destroy();
    });
    request.pipe(forwarded);
  }
}

function sendJson(response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { "content-type": "application/json" });
  response.end(JSON.stringify(body));
}
