/**
 * Where a Chromium trace's CPU time went (bench/console-bench.ts with
 * CONSOLE_BENCH_TRACE): the trace's slices (complete `X` events and `B`/`E`
 * pairs) per thread, nested by time, each slice's self time (its time less
 * its children's) summed per kind of work.
 *
 * CPU time is the slices' thread time (`tdur`, what the thread spent on a
 * CPU) where Chromium records it, else wall time; a slice's self CPU time is
 * its `tdur` less its children's. A thread's busy time is its outermost
 * slices' CPU time. Each slice is put in one kind of work by its name and
 * category (`kindOf`), the way DevTools' summary groups them (scripting,
 * style/layout, paint, raster/compositing, image decode, ...).
 */

/** The trace events this reads (Chrome's JSON trace format). */
export interface TraceEvent {
  readonly ph: string;
  readonly name: string;
  readonly cat?: string;
  readonly pid: number;
  readonly tid: number;
  readonly ts: number;
  readonly dur?: number;
  readonly tdur?: number;
  readonly tts?: number;
  readonly args?: { readonly name?: string };
}

interface Slice {
  readonly name: string;
  readonly cat: string;
  readonly start: number;
  readonly end: number;
  /** CPU µs (tdur), or the wall duration when the trace has no thread time. */
  readonly cpu: number;
}

/** A thread by its process's role and its name (numbers dropped: workers are summed). */
export interface ThreadTotal {
  readonly thread: string;
  /** CPU ms of its outermost slices. */
  readonly busyMs: number;
}

export interface TraceBreakdown {
  /** CPU ms of outermost slices per process role and thread name, most first. */
  readonly threads: readonly ThreadTotal[];
  /** Self CPU ms per kind of work, most first. */
  readonly kinds: readonly { kind: string; ms: number }[];
  /** Self CPU ms per slice name (with its thread), most first. */
  readonly names: readonly { thread: string; name: string; kind: string; ms: number }[];
  /** Sum of every thread's busy time. */
  readonly totalMs: number;
}

/** The kind of work a slice is, by its name and category (first match wins). */
export function kindOf(name: string, cat: string): string {
  if (/decod/i.test(name)) return "image decode";
  if (/blob/i.test(name) || /blob/i.test(cat)) return "blob";
  if (/filter|blur/i.test(name)) return "filter (blur)";
  if (
    /^(V8|v8|GC|MinorGC|MajorGC|FunctionCall|EvaluateScript|TimerFire|EventDispatch|RunMicrotasks|FireAnimationFrame|FireIdleCallback|CompileScript|CompileCode|ParseScript|XHR|IntersectionObserver)/.test(
      name,
    ) ||
    /v8/.test(cat)
  ) {
    return "script";
  }
  if (/layout|style|HitTest|UpdateLayer|Layerize|ShapeText|LayoutTree/i.test(name)) {
    return "style/layout";
  }
  if (
    /^(Paint|PaintImage|LocalFrameView::RunPaint|PaintController|PaintArtifactCompositor)|PrePaint|Blink\.Paint/.test(
      name,
    )
  ) {
    return "paint";
  }
  if (
    /ParseHTML|Parser|Resource|URLLoader|DocumentLoader|Navigat|Socket|DNS|HttpCache|net::/i.test(
      name,
    )
  ) {
    return "network/loading";
  }
  if (
    /raster|tile|draw|swap|frame|composit|display|commit|skia|renderpass|surface|layer|viz|cc::/i.test(
      name,
    ) ||
    /^(cc|viz|gpu|disabled-by-default-cc|disabled-by-default-viz)/.test(cat)
  ) {
    return "raster/compositing";
  }
  if (/mojo|ipc|message|Receive|Send/i.test(name)) return "IPC (mojo)";
  return "other (task wrappers, I/O, scheduling)";
}

/**
 * Each process's role: its type (Browser, GPU Process, a service), and for
 * a renderer whether it renders `pageOrigin`'s page ("Renderer (page)"),
 * Chrome's own UI (WebUI pages such as the omnibox popup, which Chromium's
 * headless mode starts with every new tab: "Renderer (Chrome UI)"), or
 * something else (an `about:blank`, a spare).
 */
function processRoles(events: readonly TraceEvent[], pageOrigin: string): Map<number, string> {
  const type = new Map<number, string>();
  const seen = new Map<number, string>();
  for (const event of events) {
    if (event.ph === "M" && event.name === "process_name") {
      type.set(event.pid, event.args?.name ?? "?");
      continue;
    }
    const url = (event.args as { data?: { url?: unknown } } | undefined)?.data?.url;
    if (typeof url !== "string" || seen.get(event.pid) === "page") continue;
    if (url.startsWith(pageOrigin)) seen.set(event.pid, "page");
    else if (url.startsWith("chrome://")) seen.set(event.pid, "Chrome UI");
  }
  const roles = new Map<number, string>();
  for (const [pid, name] of type) {
    const what = seen.get(pid);
    roles.set(pid, name === "Renderer" ? `Renderer (${what ?? "other"})` : name);
  }
  return roles;
}

/** Slices per thread key (`<process role>/<thread name>`), from X and B/E events. */
function slicesOf(events: readonly TraceEvent[], pageOrigin: string): Map<string, Slice[]> {
  const processName = processRoles(events, pageOrigin);
  const threadName = new Map<string, string>();
  for (const event of events) {
    if (event.ph === "M" && event.name === "thread_name") {
      threadName.set(`${event.pid}:${event.tid}`, event.args?.name ?? "?");
    }
  }
  const keyOf = (event: TraceEvent) => {
    const thread = threadName.get(`${event.pid}:${event.tid}`) ?? `thread`;
    // Worker threads are numbered (ThreadPoolForegroundWorker, CompositorTileWorker1...).
    return `${processName.get(event.pid) ?? "?"}/${thread.replace(/\d+$/, "")}`;
  };
  const out = new Map<string, Slice[]>();
  const add = (key: string, slice: Slice) => {
    const list = out.get(key) ?? [];
    list.push(slice);
    out.set(key, list);
  };
  const open = new Map<string, TraceEvent[]>();
  for (const event of events) {
    const cat = event.cat ?? "";
    if (event.ph === "X" && event.dur !== undefined) {
      add(`${keyOf(event)}\0${event.pid}:${event.tid}`, {
        name: event.name,
        cat,
        start: event.ts,
        end: event.ts + event.dur,
        cpu: event.tdur ?? event.dur,
      });
    } else if (event.ph === "B") {
      const thread = `${event.pid}:${event.tid}`;
      const stack = open.get(thread) ?? [];
      stack.push(event);
      open.set(thread, stack);
    } else if (event.ph === "E") {
      const begin = open.get(`${event.pid}:${event.tid}`)?.pop();
      if (!begin) continue;
      const cpu =
        begin.tts !== undefined && event.tts !== undefined
          ? event.tts - begin.tts
          : event.ts - begin.ts;
      add(`${keyOf(begin)}\0${begin.pid}:${begin.tid}`, {
        name: begin.name,
        cat: begin.cat ?? "",
        start: begin.ts,
        end: event.ts,
        cpu,
      });
    }
  }
  return out;
}

/**
 * The breakdown of a trace's events (see the module comment); kinds of work
 * and slice names count the threads of the processes `only` accepts (by
 * role, e.g. the page's renderer), busy time counts every thread.
 */
export function traceBreakdown(
  events: readonly TraceEvent[],
  pageOrigin: string,
  only: (process: string) => boolean = () => true,
): TraceBreakdown {
  const busy = new Map<string, number>();
  const byKind = new Map<string, number>();
  const byName = new Map<string, { thread: string; name: string; kind: string; ms: number }>();
  for (const [key, slices] of slicesOf(events, pageOrigin)) {
    const thread = key.slice(0, key.indexOf("\0"));
    const counted = only(thread.slice(0, thread.indexOf("/")));
    slices.sort((a, b) => a.start - b.start || b.end - a.end);
    // Each slice's self CPU: its own less its direct children's.
    const self = slices.map((s) => s.cpu);
    const stack: number[] = [];
    for (let i = 0; i < slices.length; i++) {
      const slice = slices[i]!;
      while (stack.length > 0 && slices[stack.at(-1)!]!.end <= slice.start) stack.pop();
      const parent = stack.at(-1);
      if (parent === undefined) busy.set(thread, (busy.get(thread) ?? 0) + slice.cpu / 1000);
      else self[parent] = self[parent]! - slice.cpu;
      stack.push(i);
    }
    for (let i = 0; i < slices.length && counted; i++) {
      const slice = slices[i]!;
      const ms = Math.max(0, self[i]!) / 1000;
      const kind = kindOf(slice.name, slice.cat);
      byKind.set(kind, (byKind.get(kind) ?? 0) + ms);
      const nameKey = `${thread}\0${slice.name}`;
      const entry = byName.get(nameKey) ?? { thread, name: slice.name, kind, ms: 0 };
      entry.ms += ms;
      byName.set(nameKey, entry);
    }
  }
  const threads = [...busy]
    .map(([thread, busyMs]) => ({ thread, busyMs }))
    .sort((a, b) => b.busyMs - a.busyMs);
  return {
    threads,
    kinds: [...byKind].map(([kind, ms]) => ({ kind, ms })).sort((a, b) => b.ms - a.ms),
    names: [...byName.values()].sort((a, b) => b.ms - a.ms),
    totalMs: threads.reduce((sum, t) => sum + t.busyMs, 0),
  };
}
