/**
 * The text of the room event that references a media item: its caption
 * (a `body` beside a `filename`, Matrix v1.10 media captions) or its body.
 * mxcd's references API names the room and event but not their text, so the
 * console reads the event with the client API
 * (`GET /_matrix/client/v3/rooms/{roomId}/event/{eventId}`), which answers
 * only when the admin can see the room; otherwise it says so. The text is
 * rendered as text (Preact escapes it), never as HTML, and cut to a bound.
 */
import { useEffect, useState } from "preact/hooks";
import { isAbort, seg } from "./api";
import { useConsole } from "./context";

/** Longest caption shown (a body can be up to an event's 64 KiB). */
const MAX_CHARS = 500;

interface EventContent {
  body?: unknown;
  filename?: unknown;
}

export function Caption(props: { roomId: string; eventId: string }) {
  const { api } = useConsole();
  const [text, setText] = useState<{ kind: "caption" | "body" | "none"; text: string }>();
  const [hidden, setHidden] = useState(false);
  useEffect(() => {
    const abort = new AbortController();
    api
      .get<{ content?: EventContent }>(
        `/_matrix/client/v3/rooms/${seg(props.roomId)}/event/${seg(props.eventId)}`,
        abort.signal,
      )
      .then(
        (event) => setText(captionOf(event.content ?? {})),
        (error) => isAbort(error) || setHidden(true),
      );
    return () => abort.abort();
  }, [props.roomId, props.eventId]);
  if (hidden) return <span class="muted">not visible to you (not in the room)</span>;
  if (!text) return <span class="muted">…</span>;
  if (text.kind === "none") return <span class="muted">—</span>;
  return (
    <span class="caption">
      <span class="muted">{text.kind}: </span>
      {text.text}
    </span>
  );
}

function captionOf(content: EventContent): { kind: "caption" | "body" | "none"; text: string } {
  const body = typeof content.body === "string" ? content.body : "";
  if (body === "") return { kind: "none", text: "" };
  const cut = body.length > MAX_CHARS ? `${body.slice(0, MAX_CHARS)}…` : body;
  const filename = typeof content.filename === "string" ? content.filename : undefined;
  return { kind: filename !== undefined && filename !== body ? "caption" : "body", text: cut };
}
