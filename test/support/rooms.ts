/** Small helpers for room tests: create rooms and send events over the client API. */
import assert from "node:assert/strict";
import type { TestUser } from "./test-server.js";

export const CLIENT = "/_matrix/client/v3";

let txnCounter = 0;

/** A fresh transaction id. */
export function txn(): string {
  txnCounter += 1;
  return `txn-${process.pid}-${txnCounter}`;
}

/** `/rooms/<encoded room id>` under the v3 prefix. */
export function roomPath(roomId: string): string {
  return `${CLIENT}/rooms/${encodeURIComponent(roomId)}`;
}

/** Creates a room as `user` and returns its id (asserting 200). */
export async function createRoom(user: TestUser, body: object = {}): Promise<string> {
  const res = await user.http.post(`${CLIENT}/createRoom`, body);
  assert.equal(res.status, 200, res.text);
  return res.body.room_id;
}

/** Sends a message event and returns its id (asserting 200). */
export async function send(
  user: TestUser,
  roomId: string,
  content: object,
  type = "m.room.message",
): Promise<string> {
  const res = await user.http.put(`${roomPath(roomId)}/send/${type}/${txn()}`, content);
  assert.equal(res.status, 200, res.text);
  return res.body.event_id;
}

/** Sets a state event and returns its id (asserting 200). */
export async function setState(
  user: TestUser,
  roomId: string,
  type: string,
  content: object,
  stateKey = "",
): Promise<string> {
  const res = await user.http.put(
    `${roomPath(roomId)}/state/${type}/${encodeURIComponent(stateKey)}`,
    content,
  );
  assert.equal(res.status, 200, res.text);
  return res.body.event_id;
}

/** Redacts an event and returns the redaction's id (asserting 200). */
export async function redact(user: TestUser, roomId: string, eventId: string): Promise<string> {
  const res = await user.http.put(
    `${roomPath(roomId)}/redact/${encodeURIComponent(eventId)}/${txn()}`,
    { reason: "test" },
  );
  assert.equal(res.status, 200, res.text);
  return res.body.event_id;
}

/** Joins a room (asserting 200). */
export async function join(user: TestUser, roomId: string): Promise<void> {
  const res = await user.http.post(`${roomPath(roomId)}/join`, {});
  assert.equal(res.status, 200, res.text);
}

/** An `m.image` message referencing `url` (and optionally a thumbnail). */
export function image(url: string, thumbnailUrl?: string): object {
  return {
    msgtype: "m.image",
    body: "image.png",
    url,
    ...(thumbnailUrl && { info: { mimetype: "image/png", thumbnail_url: thumbnailUrl } }),
  };
}
