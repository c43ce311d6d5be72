/** The console's shell: sign-in, then the header, navigation and the current view. */
import { useEffect, useState } from "preact/hooks";
import { Api, messageOf } from "./api";
import { type ConsoleContext, Ctx } from "./context";
import { Detail } from "./detail";
import { Feed } from "./feed";
import { Login } from "./login";
import { Owner } from "./owner";
import { listingPath, Review, summaryPath } from "./review";
import { Rooms } from "./rooms";
import { BASE, hrefOf, linkClick, navigate, parseRoute, type Route, useRoute } from "./router";
import {
  type ConsoleSettings,
  endSession,
  LoginRefused,
  openSession,
  type Session,
  saveSession,
  storedToken,
} from "./session";

/** What start-up found: the settings, and the stored token's session or why it was refused. */
export interface Boot {
  settings?: ConsoleSettings;
  session?: Session;
  notice?: string;
}

/**
 * Start-up's requests, all in one round trip (main.tsx calls this before
 * the first render): the settings, a stored token's check (whoami and the
 * admin check) and, on the review grid, the grid's first page and its
 * summary — the listing answers a non-admin 403 itself, so it need not wait
 * for the check; a refused session drops it unread.
 */
export async function startBoot(): Promise<Boot> {
  const stored = storedToken();
  const opening = stored ? openSession(stored.token, stored.owned) : undefined;
  opening?.catch(() => {}); // judged below, after the settings
  if (stored) prefetchView(new Api(stored.token), parseRoute(location));
  const boot: Boot = {};
  try {
    boot.settings = await new Api(undefined).get<ConsoleSettings>(`${BASE}config.json`);
    if (opening) {
      try {
        boot.session = await opening;
      } catch (e) {
        sessionStorage.clear();
        Api.dropPrefetched();
        boot.notice = e instanceof LoginRefused ? e.message : messageOf(e);
      }
    }
  } catch (e) {
    boot.notice = messageOf(e);
  }
  return boot;
}

/** Starts the first requests `route`'s view will make (only the grid's are worth it). */
function prefetchView(api: Api, route: Route): void {
  if (route.name !== "grid") return;
  const filters = Object.fromEntries(route.query.entries());
  api.prefetch(listingPath(filters));
  api.prefetch(summaryPath(filters));
}

export function App(props: { boot: Promise<Boot> }) {
  const [settings, setSettings] = useState<ConsoleSettings | undefined>();
  const [session, setSession] = useState<Session | undefined>();
  const [notice, setNotice] = useState<string | undefined>();
  const [ready, setReady] = useState(false);
  const [status, setStatus] = useState<{ text: string; kind: "info" | "error" } | undefined>();

  useEffect(() => {
    void props.boot.then((boot) => {
      setSettings(boot.settings);
      setSession(boot.session);
      setNotice(boot.notice);
      setReady(true);
    });
  }, []);

  if (!ready) return <p aria-live="polite">Loading…</p>;
  if (!settings) return <p role="alert">{notice}</p>;
  if (!session) {
    return (
      <Login
        settings={settings}
        notice={notice}
        onSession={(s) => {
          saveSession(s.api.token ?? "", s.owned);
          setNotice(undefined);
          setSession(s);
        }}
      />
    );
  }
  const ctx: ConsoleContext = {
    session,
    settings,
    announce: (text, kind = "info") => setStatus({ text, kind }),
  };
  return (
    <Ctx.Provider value={ctx}>
      <Shell
        status={status}
        onLogout={async () => {
          Api.dropPrefetched();
          await endSession(session);
          setSession(undefined);
          setNotice("Signed out.");
          navigate(BASE, true);
        }}
      />
    </Ctx.Provider>
  );
}

function Shell(props: {
  status: { text: string; kind: "info" | "error" } | undefined;
  onLogout: () => void;
}) {
  const route = useRoute();
  const [jump, setJump] = useState("");
  const nav = (name: "grid" | "feed" | "rooms", text: string) => (
    <a
      href={hrefOf({ name, query: new URLSearchParams() })}
      onClick={linkClick}
      aria-current={route.name === name ? "page" : undefined}
    >
      {text}
    </a>
  );
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <span class="brand">mxcd console</span>
        <nav aria-label="Main">
          {nav("grid", "Review")}
          {nav("feed", "Quarantine feed")}
          {nav("rooms", "Rooms")}
        </nav>
        <form
          class="jump"
          aria-label="Open a user, room or media"
          onSubmit={(event) => {
            event.preventDefault();
            const id = jump.trim();
            if (id.startsWith("@")) navigate(hrefOf({ name: "user", userId: id }));
            else if (id.startsWith("!")) navigate(hrefOf({ name: "room", roomId: id }));
            else {
              const mxc = /^mxc:\/\/([^/]+)\/([^/]+)$/.exec(id);
              if (mxc) navigate(hrefOf({ name: "media", origin: mxc[1]!, mediaId: mxc[2]! }));
            }
          }}
        >
          <label for="jump">Open user, room or mxc</label>
          <input
            id="jump"
            value={jump}
            placeholder="@user:server, !room:server, mxc://…"
            onInput={(e) => setJump(e.currentTarget.value)}
          />
        </form>
        <UserBox onLogout={props.onLogout} />
      </header>
      <output
        class={props.status?.kind === "error" ? "status status-error" : "status"}
        aria-live="polite"
      >
        {props.status?.text ?? ""}
      </output>
      <main id="main" tabIndex={-1}>
        <View />
      </main>
    </>
  );
}

function UserBox(props: { onLogout: () => void }) {
  return (
    <Ctx.Consumer>
      {(ctx) => (
        <div class="userbox">
          <span class="whoami">{ctx?.session.userId}</span>
          <button type="button" onClick={props.onLogout}>
            Sign out
          </button>
        </div>
      )}
    </Ctx.Consumer>
  );
}

function View() {
  const route = useRoute();
  switch (route.name) {
    case "grid":
      return <Review query={route.query} />;
    case "media":
      return (
        <Detail
          key={`${route.origin}/${route.mediaId}`}
          origin={route.origin}
          mediaId={route.mediaId}
        />
      );
    case "feed":
      return <Feed query={route.query} />;
    case "user":
      return <Owner key={route.userId} kind="user" id={route.userId} />;
    case "room":
      return <Owner key={route.roomId} kind="room" id={route.roomId} />;
    case "rooms":
      return <Rooms query={route.query} />;
  }
}
