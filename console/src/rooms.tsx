/**
 * The room list (docs/console.md "User and room views"): Synapse's admin
 * room list (`GET /_synapse/admin/v1/rooms`, served by mxcd standalone and by
 * the homeserver when attached), searched by name, alias or id
 * (`search_term`), 50 rooms a page; each room links to its media view.
 */
import { useEffect, useState } from "preact/hooks";
import { isAbort, messageOf, queryString } from "./api";
import { useConsole } from "./context";
import { hrefOf, linkClick, navigate } from "./router";

interface RoomEntry {
  room_id: string;
  name?: string | null;
  canonical_alias?: string | null;
  joined_members?: number;
}
interface RoomPage {
  rooms: RoomEntry[];
  total_rooms?: number;
  next_batch?: number;
}

const PAGE = 50;

export function Rooms(props: { query: URLSearchParams }) {
  const { api } = useConsole();
  const search = props.query.get("search") ?? "";
  const [input, setInput] = useState(search);
  const [rooms, setRooms] = useState<RoomEntry[]>([]);
  const [total, setTotal] = useState<number | undefined>();
  const [next, setNext] = useState<number | undefined>();
  const [from, setFrom] = useState(0);
  const [error, setError] = useState<string | undefined>();

  useEffect(() => {
    const abort = new AbortController();
    setError(undefined);
    api
      .get<RoomPage>(
        `/_synapse/admin/v1/rooms${queryString({ search_term: search, from, limit: PAGE })}`,
        abort.signal,
      )
      .then(
        (page) => {
          setRooms((old) => (from === 0 ? page.rooms : [...old, ...page.rooms]));
          setTotal(page.total_rooms);
          setNext(page.next_batch);
        },
        (e) => isAbort(e) || setError(messageOf(e)),
      );
    return () => abort.abort();
  }, [search, from]);

  return (
    <>
      <h1>Rooms</h1>
      <form
        class="filters"
        aria-label="Find rooms"
        onSubmit={(event) => {
          event.preventDefault();
          const query = new URLSearchParams();
          if (input.trim()) query.set("search", input.trim());
          setFrom(0);
          navigate(hrefOf({ name: "rooms", query }), true);
        }}
      >
        <div class="field">
          <label for="rooms-search">Name, alias or room id</label>
          <input
            id="rooms-search"
            value={input}
            placeholder="part of a name"
            onInput={(e) => setInput(e.currentTarget.value)}
          />
        </div>
        <div class="field field-buttons">
          <button type="submit" class="primary">
            Find rooms
          </button>
        </div>
      </form>
      <p class="summary" aria-live="polite">
        {total === undefined ? " " : `${total} room${total === 1 ? "" : "s"}`}
      </p>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {rooms.length > 0 && (
        <table class="refs rooms">
          <thead>
            <tr>
              <th scope="col">Room</th>
              <th scope="col">Alias</th>
              <th scope="col">Members</th>
            </tr>
          </thead>
          <tbody>
            {rooms.map((room) => (
              <tr key={room.room_id}>
                <td>
                  <a href={hrefOf({ name: "room", roomId: room.room_id })} onClick={linkClick}>
                    {room.name || room.room_id}
                  </a>
                  {room.name && <div class="muted">{room.room_id}</div>}
                </td>
                <td>{room.canonical_alias ?? "—"}</td>
                <td>{room.joined_members ?? "—"}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {next !== undefined && (
        <button type="button" class="more" onClick={() => setFrom(next)}>
          More rooms
        </button>
      )}
    </>
  );
}
