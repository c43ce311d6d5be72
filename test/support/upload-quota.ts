/** Row counts the upload-quota tests check after an upload, refused or not. */
import type { TestServer } from "./test-server.js";

/** `userId`'s media rows (pending and uploaded). */
export async function mediaRowsOf(server: TestServer, userId: string): Promise<number> {
  const rows = await server.app.database.db
    .selectFrom("local_media_repository")
    .select("media_id")
    .where("user_id", "=", userId)
    .execute();
  return rows.length;
}

/** `userId`'s upload reservations, live or lapsed. */
export async function reservationsOf(server: TestServer, userId: string): Promise<number> {
  const rows = await server.app.database.db
    .selectFrom("media_upload_reservations")
    .select("reservation_id")
    .where("user_id", "=", userId)
    .execute();
  return rows.length;
}
