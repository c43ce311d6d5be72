/**
 * A scripted homeserver for attached-mode tests, written from the Matrix
 * spec and shared/reference/attached-mode.md (§1, §3) — deliberately not
 * from mxcd's code, so the two sides cannot share one bug.
 *
 * What it serves (Synapse's behaviour):
 * - `GET /_matrix/client/v3/account/whoami`: token from `Authorization:
 *   Bearer` or `?access_token`; 401 `M_MISSING_TOKEN` / `M_UNKNOWN_TOKEN`
 *   (`soft_logout: true` for an expired token); `user_id` masquerading for
 *   application-service tokens only: the target must match the AS's user
 *   regex (start-anchored, like Python's `re.match`) and be registered, else
 *   403 `M_FORBIDDEN`; `is_guest`.
 * - `GET /_synapse/admin/v1/users/{userId}/admin`: admins only (403
 *   otherwise), `{"admin": bool}`.
 * - `GET /_synapse/admin/v1/whois/{userId}` and
 *   `/_matrix/client/v3/admin/whois/{userId}`: admins, or oneself.
 *
 * - Rooms and events (`createRoom`, `sendEvent`, `redact`, or the client API
 *   below), pushed to an application service through an `AppServicePusher`
 *   when one is attached (`attachAppService`), the way Synapse does.
 * - Client API for SDKs: `GET /_matrix/client/versions`, `GET`/`POST
 *   /_matrix/client/v3/login` (m.login.password), `POST …/logout`,
 *   `POST …/createRoom`, `POST …/join/{roomId}`, `PUT …/rooms/{id}/send/{type}/{txnId}`
 *   and `PUT …/rooms/{id}/redact/{eventId}/{txnId}` (idempotent per token and
 *   transaction id).
 * - Synapse's admin room APIs (admins only, 403 otherwise, 404 for an unknown
 *   room): `GET /_synapse/admin/v1/rooms?from=&limit=` (offset paging,
 *   `next_batch` while more remain), `GET /_synapse/admin/v1/rooms/{id}/messages
 *   ?from=&dir=&limit=` (every event, whatever the membership; `end` only with a
 *   non-empty chunk, so paging forward from the last `end` later returns only
 *   newer events) and `GET /_synapse/admin/v1/room/{id}/media` (`{local, remote}`
 *   mxc lists from unencrypted events' `content.url` and
 *   `content.info.thumbnail_url`, newest first, duplicates kept, redacted events
 *   included as before Synapse prunes them).
 *
 * It can be told to fail (`failWith`): 500 JSON, an HTML 502 page, a reset
 * connection, or a stall until released; `intercept` answers chosen requests
 * with any status and raw body (hostile answers). It counts requests per path so
 * tests can assert caching and single-flight.
 */
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { AppServicePusher } from "./app-service-pusher.js";

export interface ScriptedUser {
  readonly userId: string;
  readonly deviceId?: string;
  readonly admin?: boolean;
  readonly guest?: boolean;
}

export interface ScriptedAppService {
  /** The AS's own user (its sender). */
  readonly sender: string;
  /** Users it may masquerade as (start-anchored regexes). */
  readonly userRegexes: readonly string[];
  /** Users it has registered. */
  readonly registered: ReadonlySet<string>;
}

/** A room event in the client-server format (what /messages and AS pushes carry). */
export interface ScriptedEvent {
  readonly event_id: string;
  readonly room_id: string;
  readonly sender: string;
  readonly type: string;
  readonly content: Record<string, unknown>;
  readonly origin_server_ts: number;
  readonly state_key?: string;
  readonly redacts?: string;
  readonly unsigned?: Record<string, unknown>;
}

interface ScriptedRoom {
  readonly roomId: string;
  readonly creator: string;
  readonly members: Set<string>;
  readonly events: ScriptedEvent[];
}

export interface ScriptedHomeserverOptions {
  /** The homeserver's server_name (room ids and the local/remote split use it). */
  readonly serverName?: string;
}

export type FailureMode = "500" | "html502" | "reset" | "stall";

export class ScriptedHomeserver {
  readonly #server: Server;
  readonly #tokens = new Map<string, ScriptedUser>();
  readonly #expired = new Set<string>();
  readonly #appServices = new Map<string, ScriptedAppService>();
  readonly #admins = new Set<string>();
  readonly #counts = new Map<string, number>();
  readonly #stalled: ServerResponse[] = [];
  readonly #passwords = new Map<string, string>();
  readonly #rooms = new Map<string, ScriptedRoom>();
  /** Client transaction ids already used, per token: `${token}\n${txnId}` → event id. */
  readonly #clientTxns = new Map<string, string>();
  #pusher: AppServicePusher | undefined;
  #pushing: Promise<void> = Promise.resolve();
  readonly serverName: string;
  /** When set, every request fails this way. */
  failWith: FailureMode | undefined;
  /**
   * When set, called for every request (after counting it): an answer it
   * returns is sent as it is (raw body, JSON content type) instead of the
   * normal one; undefined lets the request through.
   */
  intercept: ((url: URL) => { status: number; body: string } | undefined) | undefined;
  /** Every request's headers, newest last (for X-Forwarded-For and token checks). */
  readonly seen: IncomingMessage["headers"][] = [];

  private constructor(options: ScriptedHomeserverOptions) {
    this.serverName = options.serverName ?? "hs.test";
    this.#server = createServer((request, response) => {
      this.#handle(request, response).catch((error: unknown) => {
        if (!response.headersSent)
          json(response, 500, { errcode: "M_UNKNOWN", error: String(error) });
        else response.destroy();
      });
    });
  }

  static async start(options: ScriptedHomeserverOptions = {}): Promise<ScriptedHomeserver> {
    const hs = new ScriptedHomeserver(options);
    hs.#server.listen(0, "127.0.0.1");
    await once(hs.#server, "listening");
    return hs;
  }

  get baseUrl(): string {
    const { port } = this.#server.address() as AddressInfo;
    return `http://127.0.0.1:${port}`;
  }

  /** Issues `token` for a user (admins are remembered by user id). */
  addToken(token: string, user: ScriptedUser): void {
    this.#tokens.set(token, user);
    if (user.admin) this.#admins.add(user.userId);
  }

  /** The token stops working: whoami answers 401 with `soft_logout`. */
  expire(token: string): void {
    this.#expired.add(token);
  }

  /** The token is logged out: whoami answers 401 `M_UNKNOWN_TOKEN`. */
  logout(token: string): void {
    this.#tokens.delete(token);
  }

  /**
   * Registers a user who can log in with a password (`POST …/login`).
   * Returns the user id.
   */
  addUser(localpart: string, password: string, options: { admin?: boolean } = {}): string {
    const userId = `@${localpart}:${this.serverName}`;
    this.#passwords.set(userId, password);
    if (options.admin) this.#admins.add(userId);
    return userId;
  }

  /** Tokens issued for a user (by `addToken` or a login), e.g. to log one out. */
  tokensOf(userId: string): string[] {
    return [...this.#tokens].filter(([, user]) => user.userId === userId).map(([token]) => token);
  }

  /**
   * Sends every event persisted from now on to `pusher` (not the events
   * before: an AS registered later only sees new events, as with Synapse);
   * undefined stops pushing.
   */
  attachAppService(pusher: AppServicePusher | undefined): void {
    this.#pusher = pusher;
  }

  /** Resolves once every event persisted so far has been pushed (or failed). */
  async pushed(): Promise<void> {
    await this.#pushing;
    await this.#pusher?.flush();
  }

  /** Creates a room (creator joined, with a create and a member event). */
  createRoom(creator: string, name?: string): string {
    const roomId = `!${randomBytes(9).toString("base64url")}:${this.serverName}`;
    this.#rooms.set(roomId, { roomId, creator, members: new Set(), events: [] });
    this.sendEvent(roomId, creator, "m.room.create", { creator, room_version: "10" }, "");
    this.join(roomId, creator);
    if (name !== undefined) this.sendEvent(roomId, creator, "m.room.name", { name }, "");
    return roomId;
  }

  join(roomId: string, userId: string): void {
    const room = this.#room(roomId);
    room.members.add(userId);
    this.sendEvent(roomId, userId, "m.room.member", { membership: "join" }, userId);
  }

  /** Persists an event (as if sent by `sender`) and queues it for the AS. */
  sendEvent(
    roomId: string,
    sender: string,
    type: string,
    content: Record<string, unknown>,
    stateKey?: string,
  ): ScriptedEvent {
    return this.#persist(this.#room(roomId), {
      sender,
      type,
      content,
      ...(stateKey !== undefined && { state_key: stateKey }),
    });
  }

  /** Redacts `eventId`: a redaction event with `redacts` at the top and in content. */
  redact(roomId: string, sender: string, eventId: string, reason?: string): ScriptedEvent {
    const room = this.#room(roomId);
    const content: Record<string, unknown> = { redacts: eventId };
    if (reason !== undefined) content.reason = reason;
    return this.#persist(room, { sender, type: "m.room.redaction", content, redacts: eventId });
  }

  /** Every event of a room, oldest first. */
  events(roomId: string): readonly ScriptedEvent[] {
    return this.#room(roomId).events;
  }

  get roomIds(): string[] {
    return [...this.#rooms.keys()];
  }

  #room(roomId: string): ScriptedRoom {
    const room = this.#rooms.get(roomId);
    if (!room) throw new Error(`scripted homeserver: no room ${roomId}`);
    return room;
  }

  #persist(
    room: ScriptedRoom,
    fields: Pick<ScriptedEvent, "sender" | "type" | "content" | "state_key" | "redacts">,
  ): ScriptedEvent {
    const event: ScriptedEvent = {
      event_id: `$${randomBytes(24).toString("base64url")}`,
      room_id: room.roomId,
      origin_server_ts: Date.now(),
      ...fields,
    };
    room.events.push(event);
    const pusher = this.#pusher;
    if (pusher) {
      pusher.enqueue(event);
      // Synapse pushes in the background; a failed push is retried by the pusher.
      this.#pushing = this.#pushing.then(() => pusher.flush()).catch(() => {});
    }
    return event;
  }

  addAppService(asToken: string, service: ScriptedAppService): void {
    this.#appServices.set(asToken, service);
    this.#tokens.set(asToken, { userId: service.sender });
  }

  /** Requests received on a path (without its query). */
  count(path: string): number {
    return this.#counts.get(path) ?? 0;
  }

  /** Every path requested so far (without queries), e.g. to assert that none was a media path. */
  get paths(): string[] {
    return [...this.#counts.keys()];
  }

  /** Requests received in all. */
  get total(): number {
    let sum = 0;
    for (const n of this.#counts.values()) sum += n;
    return sum;
  }

  /** Answers every stalled request with a 500 and stops stalling. */
  release(): void {
    this.failWith = undefined;
    for (const response of this.#stalled.splice(0)) json(response, 500, { errcode: "M_UNKNOWN" });
  }

  /** Stops listening (a second call does nothing): the homeserver is down. */
  async stop(): Promise<void> {
    if (!this.#server.listening) return;
    this.release();
    this.#server.closeAllConnections();
    this.#server.close();
    await once(this.#server, "close");
  }

  async #handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? "/", "http://hs");
    this.#counts.set(url.pathname, this.count(url.pathname) + 1);
    this.seen.push(request.headers);
    const scripted = this.intercept?.(url);
    if (scripted) {
      response.writeHead(scripted.status, { "content-type": "application/json" });
      response.end(scripted.body);
      return;
    }
    switch (this.failWith) {
      case "500":
        return json(response, 500, { errcode: "M_UNKNOWN", error: "Internal server error" });
      case "html502":
        response.writeHead(502, { "content-type": "text/html" });
        response.end("<html><body><h1>502 Bad Gateway</h1></body></html>");
        return;
      case "reset":
        request.socket.destroy();
        return;
      case "stall":
        this.#stalled.push(response);
        return;
    }
    const body = await readBody(request);
    if (body === INVALID) return json(response, 400, { errcode: "M_NOT_JSON", error: "Bad JSON" });
    if (this.#unauthenticated(request.method ?? "GET", url, body, response)) return;
    const token = tokenOf(request, url);
    if (token === undefined) {
      return json(response, 401, { errcode: "M_MISSING_TOKEN", error: "Missing access token" });
    }
    if (this.#expired.has(token)) {
      return json(response, 401, {
        errcode: "M_UNKNOWN_TOKEN",
        error: "Access token has expired",
        soft_logout: true,
      });
    }
    const user = this.#tokens.get(token);
    if (!user) {
      return json(response, 401, {
        errcode: "M_UNKNOWN_TOKEN",
        error: "Unrecognised access token",
        soft_logout: false,
      });
    }
    this.#route(request.method ?? "GET", url, token, user, body, response);
  }

  /** Routes that need no token; true when answered. */
  #unauthenticated(method: string, url: URL, body: unknown, response: ServerResponse): boolean {
    const path = url.pathname;
    if (path === "/_matrix/client/versions") {
      json(response, 200, { versions: ["v1.1", "v1.11", "v1.12"], unstable_features: {} });
      return true;
    }
    if (path === "/_matrix/client/v3/login" && method === "GET") {
      json(response, 200, { flows: [{ type: "m.login.password" }] });
      return true;
    }
    if (path === "/_matrix/client/v3/login" && method === "POST") {
      this.#login(body, response);
      return true;
    }
    return false;
  }

  #login(body: unknown, response: ServerResponse) {
    const request = (body ?? {}) as Record<string, unknown>;
    const identifier = request.identifier as Record<string, unknown> | undefined;
    const user = identifier?.user ?? request.user;
    if (request.type !== "m.login.password" || typeof user !== "string") {
      return json(response, 400, { errcode: "M_UNKNOWN", error: "Bad login type or user" });
    }
    const userId = user.startsWith("@") ? user : `@${user}:${this.serverName}`;
    if (this.#passwords.get(userId) !== request.password) {
      return forbidden(response, "Invalid username or password");
    }
    const token = `syt_${randomBytes(18).toString("base64url")}`;
    const deviceId = randomBytes(5).toString("hex").toUpperCase();
    this.addToken(token, { userId, deviceId, admin: this.#admins.has(userId) });
    json(response, 200, { user_id: userId, access_token: token, device_id: deviceId });
  }

  #route(
    method: string,
    url: URL,
    token: string,
    user: ScriptedUser,
    body: unknown,
    response: ServerResponse,
  ) {
    const path = url.pathname;
    if (this.#client(method, path, token, user, body, response)) return;
    if (this.#adminRooms(path, url, user, response)) return;
    if (path === "/_matrix/client/v3/account/whoami")
      return this.#whoami(url, token, user, response);
    const adminMatch = /^\/_synapse\/admin\/v1\/users\/([^/]+)\/admin$/.exec(path);
    if (adminMatch) {
      if (!this.#admins.has(user.userId)) return forbidden(response, "You are not a server admin");
      const target = decodeURIComponent(adminMatch[1]!);
      return json(response, 200, { admin: this.#admins.has(target) });
    }
    const whois = /^\/_(?:synapse\/admin\/v1|matrix\/client\/v3\/admin)\/whois\/([^/]+)$/.exec(
      path,
    );
    if (whois) {
      const target = decodeURIComponent(whois[1]!);
      if (!this.#admins.has(user.userId) && target !== user.userId) {
        return forbidden(response, "You are not a server admin");
      }
      return json(response, 200, { user_id: target, devices: {} });
    }
    json(response, 404, { errcode: "M_UNRECOGNIZED", error: "Unrecognized request" });
  }

  /** The client API an SDK needs to send events; true when answered. */
  #client(
    method: string,
    path: string,
    token: string,
    user: ScriptedUser,
    body: unknown,
    response: ServerResponse,
  ): boolean {
    const CLIENT = "/_matrix/client/v3";
    const content = (body ?? {}) as Record<string, unknown>;
    if (method === "POST" && path === `${CLIENT}/logout`) {
      this.logout(token);
      json(response, 200, {});
      return true;
    }
    if (method === "POST" && path === `${CLIENT}/createRoom`) {
      const name = typeof content.name === "string" ? content.name : undefined;
      json(response, 200, { room_id: this.createRoom(user.userId, name) });
      return true;
    }
    const joinMatch = /^\/_matrix\/client\/v3\/(?:join\/([^/]+)|rooms\/([^/]+)\/join)$/.exec(path);
    if (method === "POST" && joinMatch) {
      const roomId = decodeURIComponent((joinMatch[1] ?? joinMatch[2])!);
      if (!this.#rooms.has(roomId)) notFound(response, "Unknown room");
      else {
        this.join(roomId, user.userId);
        json(response, 200, { room_id: roomId });
      }
      return true;
    }
    const send =
      /^\/_matrix\/client\/v3\/rooms\/([^/]+)\/(?:send\/([^/]+)|redact\/([^/]+))\/([^/]+)$/.exec(
        path,
      );
    if (method === "PUT" && send) {
      const roomId = decodeURIComponent(send[1]!);
      const room = this.#rooms.get(roomId);
      if (!room) notFound(response, "Unknown room");
      else if (!room.members.has(user.userId)) forbidden(response, "User not in room");
      else {
        const key = `${token}\n${send[4]}`;
        let eventId = this.#clientTxns.get(key);
        if (eventId === undefined) {
          const event =
            send[2] !== undefined
              ? this.sendEvent(roomId, user.userId, decodeURIComponent(send[2]), content)
              : this.redact(
                  roomId,
                  user.userId,
                  decodeURIComponent(send[3]!),
                  typeof content.reason === "string" ? content.reason : undefined,
                );
          eventId = event.event_id;
          this.#clientTxns.set(key, eventId);
        }
        json(response, 200, { event_id: eventId });
      }
      return true;
    }
    return false;
  }

  /** Synapse's admin room APIs; true when answered. */
  #adminRooms(path: string, url: URL, user: ScriptedUser, response: ServerResponse): boolean {
    const ADMIN = "/_synapse/admin/v1";
    const list = path === `${ADMIN}/rooms`;
    const messages = /^\/_synapse\/admin\/v1\/rooms\/([^/]+)\/messages$/.exec(path);
    const media = /^\/_synapse\/admin\/v1\/room\/([^/]+)\/media$/.exec(path);
    if (!list && !messages && !media) return false;
    if (!this.#admins.has(user.userId)) {
      forbidden(response, "You are not a server admin");
      return true;
    }
    if (list) {
      const from = integer(url.searchParams.get("from"), 0);
      const limit = integer(url.searchParams.get("limit"), 100);
      if (from === undefined || limit === undefined) {
        invalid(response, "from and limit must be non-negative integers");
        return true;
      }
      const all = [...this.#rooms.values()];
      const page = all.slice(from, from + limit).map((room) => ({
        room_id: room.roomId,
        name: null,
        creator: room.creator,
        joined_members: room.members.size,
      }));
      json(response, 200, {
        rooms: page,
        offset: from,
        total_rooms: all.length,
        ...(from + limit < all.length && { next_batch: from + limit }),
        ...(from > 0 && { prev_batch: Math.max(0, from - limit) }),
      });
      return true;
    }
    const roomId = decodeURIComponent((messages ?? media)![1]!);
    const room = this.#rooms.get(roomId);
    if (!room) {
      notFound(response, "Room not found");
      return true;
    }
    if (media) {
      json(response, 200, this.#roomMedia(room));
      return true;
    }
    this.#messages(room, url, response);
    return true;
  }

  #messages(room: ScriptedRoom, url: URL, response: ServerResponse) {
    const dir = url.searchParams.get("dir") ?? "f";
    const limit = integer(url.searchParams.get("limit"), 10);
    const fromParam = url.searchParams.get("from");
    const from =
      fromParam === null ? (dir === "f" ? 0 : room.events.length) : streamPosition(fromParam);
    if ((dir !== "f" && dir !== "b") || limit === undefined || from === undefined) {
      return invalid(response, "Bad dir, limit or from");
    }
    const position = Math.min(from, room.events.length);
    const capped = Math.min(limit, 1000);
    const chunk =
      dir === "f"
        ? room.events.slice(position, position + capped)
        : room.events.slice(Math.max(0, position - capped), position).reverse();
    const end = dir === "f" ? position + chunk.length : position - chunk.length;
    json(response, 200, {
      chunk: chunk.map((event) => this.#clientFormat(room, event)),
      start: `s${position}`,
      ...(chunk.length > 0 && { end: `s${end}` }),
    });
  }

  /** An event as clients see it: redacted ones lose their content. */
  #clientFormat(room: ScriptedRoom, event: ScriptedEvent): ScriptedEvent {
    const redaction = room.events.find(
      (other) => other.type === "m.room.redaction" && other.redacts === event.event_id,
    );
    if (!redaction) return event;
    return { ...event, content: {}, unsigned: { redacted_because: redaction } };
  }

  #roomMedia(room: ScriptedRoom): { local: string[]; remote: string[] } {
    const local: string[] = [];
    const remote: string[] = [];
    for (const event of [...room.events].reverse()) {
      if (event.type === "m.room.encrypted") continue;
      const info = event.content.info as Record<string, unknown> | undefined;
      for (const url of [event.content.url, info?.thumbnail_url]) {
        if (typeof url !== "string" || !url.startsWith("mxc://")) continue;
        const origin = url.slice("mxc://".length).split("/")[0];
        (origin === this.serverName ? local : remote).push(url);
      }
    }
    return { local, remote };
  }

  #whoami(url: URL, token: string, user: ScriptedUser, response: ServerResponse) {
    const service = this.#appServices.get(token);
    const masquerade = url.searchParams.get("user_id");
    if (service && masquerade !== null && masquerade !== service.sender) {
      const inNamespace = service.userRegexes.some((regex) =>
        new RegExp(`^(?:${regex})`).test(masquerade),
      );
      if (!inNamespace)
        return forbidden(response, "Application service cannot masquerade as this user");
      if (!service.registered.has(masquerade)) {
        return forbidden(response, "Application service has not registered this user");
      }
      return json(response, 200, { user_id: masquerade, is_guest: false });
    }
    json(response, 200, {
      user_id: user.userId,
      ...(user.deviceId !== undefined && { device_id: user.deviceId }),
      is_guest: user.guest === true,
    });
  }
}

function tokenOf(request: IncomingMessage, url: URL): string | undefined {
  const header = request.headers.authorization;
  const match = header === undefined ? null : /^Bearer (\S+)$/.exec(header);
  return match?.[1] ?? url.searchParams.get("access_token") ?? undefined;
}

function json(response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { "content-type": "application/json" });
  response.end(JSON.stringify(body));
}

function forbidden(response: ServerResponse, error: string): void {
  json(response, 403, { errcode: "M_FORBIDDEN", error });
}

function notFound(response: ServerResponse, error: string): void {
  json(response, 404, { errcode: "M_NOT_FOUND", error });
}

function invalid(response: ServerResponse, error: string): void {
  json(response, 400, { errcode: "M_INVALID_PARAM", error });
}

/** A non-negative integer parameter, the default when absent, undefined when bad. */
function integer(value: string | null, fallback: number): number | undefined {
  if (value === null) return fallback;
  return /^\d{1,9}$/.test(value) ? Number(value) : undefined;
}

/** This homeserver's pagination tokens are `s<position>`. */
function streamPosition(token: string): number | undefined {
  const match = /^s(\d{1,9})$/.exec(token);
  return match ? Number(match[1]) : undefined;
}

const INVALID = Symbol("invalid JSON");

/** A request body as JSON (undefined when empty); bodies over 1 MiB are cut off. */
async function readBody(request: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > 1024 * 1024) return INVALID;
    chunks.push(chunk);
  }
  if (size === 0) return undefined;
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    return INVALID;
  }
}
