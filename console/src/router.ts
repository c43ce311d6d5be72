/**
 * A tiny history router. The console's routes are real paths under
 * /_mxcd/console/ (mxcd answers index.html for them), so links can be
 * opened in a new tab, bookmarked and shared:
 *
 *   /                     review grid (filters in the query string)
 *   /media/{server}/{id}  media detail
 *   /feed                 the quarantine change feed
 *   /user/{userId}        a user's media
 *   /room/{roomId}        a room's media
 *   /rooms                the room list (`?search=` a name, alias or id)
 */
import { useEffect, useState } from "preact/hooks";

export const BASE = "/_mxcd/console/";

export type Route =
  | { name: "grid"; query: URLSearchParams }
  | { name: "media"; origin: string; mediaId: string }
  | { name: "feed"; query: URLSearchParams }
  | { name: "user"; userId: string }
  | { name: "room"; roomId: string }
  | { name: "rooms"; query: URLSearchParams };

export function parseRoute(location: Location): Route {
  const rest = location.pathname.startsWith(BASE) ? location.pathname.slice(BASE.length) : "";
  const parts = rest
    .split("/")
    .filter((p) => p !== "")
    .map(decodeURIComponent);
  const query = new URLSearchParams(location.search);
  if (parts[0] === "media" && parts.length === 3) {
    return { name: "media", origin: parts[1]!, mediaId: parts[2]! };
  }
  if (parts[0] === "feed") return { name: "feed", query };
  if (parts[0] === "user" && parts[1]) return { name: "user", userId: parts[1] };
  if (parts[0] === "room" && parts[1]) return { name: "room", roomId: parts[1] };
  if (parts[0] === "rooms") return { name: "rooms", query };
  return { name: "grid", query };
}

/** The console URL of a route. */
export function hrefOf(route: Route): string {
  const e = encodeURIComponent;
  switch (route.name) {
    case "grid": {
      const q = route.query.toString();
      return q ? `${BASE}?${q}` : BASE;
    }
    case "feed": {
      const q = route.query.toString();
      return q ? `${BASE}feed?${q}` : `${BASE}feed`;
    }
    case "media":
      return `${BASE}media/${e(route.origin)}/${e(route.mediaId)}`;
    case "user":
      return `${BASE}user/${e(route.userId)}`;
    case "room":
      return `${BASE}room/${e(route.roomId)}`;
    case "rooms": {
      const q = route.query.toString();
      return q ? `${BASE}rooms?${q}` : `${BASE}rooms`;
    }
  }
}

const listeners = new Set<() => void>();

export function navigate(href: string, replace = false): void {
  if (replace) history.replaceState(null, "", href);
  else history.pushState(null, "", href);
  for (const listener of listeners) listener();
}

window.addEventListener("popstate", () => {
  for (const listener of listeners) listener();
});

/** The current route; re-renders on navigation. */
export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(window.location));
  useEffect(() => {
    const update = () => setRoute(parseRoute(window.location));
    listeners.add(update);
    return () => {
      listeners.delete(update);
    };
  }, []);
  return route;
}

/** onClick for `<a href>` links inside the app: navigate without a reload (plain clicks only). */
export function linkClick(event: MouseEvent): void {
  if (event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const anchor = event.currentTarget as HTMLAnchorElement;
  event.preventDefault();
  navigate(anchor.getAttribute("href") ?? BASE);
}
