/**
 * A user's or a room's media as a grid (docs/console.md "User and room
 * views"), with quarantine all / delete all after a preview of the count
 * and size they would affect.
 *
 * - user: `POST /_synapse/admin/v1/user/{userId}/media/quarantine`, and
 *   `DELETE /_synapse/admin/v1/users/{userId}/media` page by page until
 *   nothing is left;
 * - room: `POST /_synapse/admin/v1/room/{roomId}/media/quarantine`; delete
 *   removes the room's local media one by one (Synapse has no room delete).
 */
import { useState } from "preact/hooks";
import { messageOf, queryString, seg } from "./api";
import { useConfirm } from "./confirm";
import { useConsole } from "./context";
import { formatBytes } from "./format";
import { type MediaRow, runAction } from "./media";
import { MediaGrid, type MediaPage } from "./media-grid";
import { useListingSource, useSummary } from "./review";

const ADMIN = "/_synapse/admin/v1";
/** Bound on delete rounds (each deletes up to 1000): a stuck deletion cannot loop forever. */
const MAX_ROUNDS = 10_000;

export function Owner(props: { kind: "user" | "room"; id: string }) {
  const { api, announce, serverName } = useConsole();
  const filters: Record<string, string> =
    props.kind === "user" ? { user_id: props.id } : { room_id: props.id };
  const [version, setVersion] = useState(0);
  const [busy, setBusy] = useState(false);
  const summary = useSummary(filters, version);
  const source = useListingSource(filters);
  const confirm = useConfirm();
  const whose = props.kind === "user" ? props.id : `room ${props.id}`;

  const preview = async (verb: string, danger: boolean, extra: string) => {
    const fresh = await api.get<{ count: number; total_bytes: number }>(
      `/_mxcd/admin/v1/media/summary${queryString(filters)}`,
    );
    return confirm.ask(
      `${verb} all media of ${whose}?`,
      <p class="preview">
        This affects <strong>{fresh.count}</strong> media,{" "}
        <strong>{formatBytes(fresh.total_bytes)}</strong>. {extra}
      </p>,
      `${verb} ${fresh.count} media`,
      danger,
    );
  };

  const quarantineAll = async () => {
    if (
      !(await preview(
        "Quarantine",
        true,
        "Protected media is left alone; copies with the same bytes are quarantined too.",
      ))
    )
      return;
    setBusy(true);
    try {
      const path =
        props.kind === "user"
          ? `${ADMIN}/user/${seg(props.id)}/media/quarantine`
          : `${ADMIN}/room/${seg(props.id)}/media/quarantine`;
      const reply = await api.post<{ num_quarantined: number }>(path);
      announce(`Quarantined ${reply.num_quarantined} media of ${whose}`);
    } catch (e) {
      announce(messageOf(e), "error");
    }
    setBusy(false);
    setVersion((v) => v + 1);
  };

  const deleteAll = async () => {
    if (!(await preview("Delete", true, "Bytes, thumbnails and records are removed for good.")))
      return;
    setBusy(true);
    let deleted = 0;
    try {
      if (props.kind === "user") {
        for (let round = 0; round < MAX_ROUNDS; round++) {
          const reply = await api.json<{ total: number }>(
            "DELETE",
            `${ADMIN}/users/${seg(props.id)}/media?limit=1000`,
          );
          deleted += reply.total;
          if (reply.total === 0) break;
        }
      } else {
        deleted = await deleteRoomMedia();
      }
      announce(`Deleted ${deleted} media of ${whose}`);
    } catch (e) {
      announce(messageOf(e), "error");
    }
    setBusy(false);
    setVersion((v) => v + 1);
  };

  /** The room's local media, read first (deleting while paging would move the pages). */
  const deleteRoomMedia = async () => {
    const local: MediaRow[] = [];
    let from: string | undefined;
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const page = await api.get<MediaPage>(
        `/_mxcd/admin/v1/media${queryString({ ...filters, origin: "local", limit: 1000, from })}`,
      );
      local.push(...page.media);
      if (page.next_batch === undefined) break;
      from = String(page.next_batch);
    }
    let deleted = 0;
    for (const row of local) {
      await runAction(api, "delete", { origin: serverName, mediaId: row.media_id });
      deleted += 1;
    }
    return deleted;
  };

  return (
    <>
      <h1>
        {props.kind === "user" ? "User " : "Room "}
        <span class="owner-id">{props.id}</span>
      </h1>
      <p class="summary" aria-live="polite">
        {summary ? `${summary.count} media, ${formatBytes(summary.total_bytes)}` : " "}
      </p>
      <div class="owner-actions">
        <button type="button" class="danger" disabled={busy} onClick={quarantineAll}>
          Quarantine all…
        </button>
        <button type="button" class="danger" disabled={busy} onClick={deleteAll}>
          Delete all…
        </button>
      </div>
      <MediaGrid
        source={source}
        sourceKey={`${props.kind} ${props.id} ${version}`}
        label={`Media of ${whose}`}
        autoFocus
        onChanged={() => setVersion((v) => v + 1)}
      />
      {confirm.dialog}
    </>
  );
}
