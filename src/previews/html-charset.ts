/**
 * Which character encoding an HTML body is in, and its decoded text.
 *
 * Synapse's order (media-gaps.md §1.4, after #11077/#11089): a `<meta>`
 * charset in the first 1 KiB, then an XML declaration's `encoding`, then the
 * `Content-Type` header's charset, then UTF-8, then windows-1252; the first
 * candidate that decodes the body without error wins. Decoding uses the
 * WHATWG encodings of Node's `TextDecoder` (full ICU), so labels mean what
 * they mean to a browser (`latin1` and `ascii` are windows-1252, which never
 * fails, so a body always decodes); windows-1252 itself is decoded here,
 * since Node 20's decoder gets it wrong.
 *
 * Beyond Synapse, as browsers do: a byte-order mark wins over everything,
 * and a `<meta>` that declares UTF-16 means UTF-8 (a page that reads the
 * meta tag in ASCII cannot be UTF-16). The `<meta>` prescan uses the same
 * tokenizer as the page (no regular expression over HTML): the first 1 KiB
 * is read as windows-1252, which keeps every ASCII byte as it is.
 */
import { TextDecoder } from "node:util";
import { type HtmlSink, scanHtml } from "./html-scanner.js";

/** Bytes searched for `<meta charset>` and the XML declaration (as Synapse and the HTML spec). */
export const CHARSET_PRESCAN_BYTES = 1024;

/** A decoded body and the encoding (WHATWG name) that decoded it. */
export interface DecodedHtml {
  text: string;
  encoding: string;
}

/**
 * Decodes `body`. `truncated` says the body is a prefix cut at a byte limit,
 * so an incomplete multi-byte character at its very end is not a decoding
 * error (it is dropped).
 */
export function decodeHtml(
  body: Uint8Array,
  contentType: string | undefined,
  truncated = false,
): DecodedHtml {
  const bom = encodingFromBom(body);
  if (bom !== undefined) {
    const decoded = tryDecode(body, bom, truncated);
    if (decoded !== undefined) return decoded;
  }
  for (const label of charsetCandidates(body, contentType)) {
    const decoded = tryDecode(body, label, truncated);
    if (decoded !== undefined) return decoded;
  }
  // windows-1252 maps every byte, so the last candidate never fails; keep the compiler sure.
  return { text: decodeWindows1252(body), encoding: "windows-1252" };
}

/**
 * The code points of bytes 0x80–0x9F in windows-1252 (WHATWG index); the
 * five bytes it leaves undefined keep their C1 code point, as in browsers.
 */
const WINDOWS_1252_HIGH = [
  0x20ac, 0x81, 0x201a, 0x192, 0x201e, 0x2026, 0x2020, 0x2021, 0x2c6, 0x2030, 0x160, 0x2039, 0x152,
  0x8d, 0x17d, 0x8f, 0x90, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014, 0x2dc, 0x2122,
  0x161, 0x203a, 0x153, 0x9d, 0x17e, 0x178,
];

/**
 * windows-1252, by hand: Node 20's `TextDecoder("windows-1252")` decodes
 * ISO-8859-1 instead (0x93 stays U+0093 instead of becoming “), so every
 * byte is read as Latin-1 and 0x80–0x9F are mapped here.
 */
export function decodeWindows1252(body: Uint8Array): string {
  return Buffer.from(body.buffer, body.byteOffset, body.byteLength)
    .toString("latin1")
    .replace(/[\x80-\x9f]/g, (c) =>
      String.fromCharCode(WINDOWS_1252_HIGH[c.charCodeAt(0) - 0x80]!),
    );
}

/** The candidate labels in Synapse's order (declared ones may be unknown labels). */
export function charsetCandidates(body: Uint8Array, contentType: string | undefined): string[] {
  const head = decodeWindows1252(body.subarray(0, CHARSET_PRESCAN_BYTES));
  const candidates: string[] = [];
  const meta = metaCharset(head);
  if (meta !== undefined) candidates.push(/^utf-?16/i.test(meta) ? "utf-8" : meta);
  const xml = xmlDeclarationEncoding(head);
  if (xml !== undefined) candidates.push(xml);
  const header = contentType === undefined ? undefined : charsetParameter(contentType);
  if (header !== undefined) candidates.push(header);
  candidates.push("utf-8", "windows-1252");
  return candidates;
}

/**
 * The `charset` parameter of a media type (`text/html; charset="utf-8"`), or
 * undefined. Parameters are split on `;` and matched case-insensitively.
 */
export function charsetParameter(mediaType: string): string | undefined {
  for (const part of mediaType.split(";").slice(1)) {
    const eq = part.indexOf("=");
    if (eq === -1 || part.slice(0, eq).trim().toLowerCase() !== "charset") continue;
    const value = part
      .slice(eq + 1)
      .trim()
      .replace(/^["']|["']$/g, "");
    return value === "" ? undefined : value;
  }
  return undefined;
}

function encodingFromBom(body: Uint8Array): string | undefined {
  if (body[0] === 0xef && body[1] === 0xbb && body[2] === 0xbf) return "utf-8";
  if (body[0] === 0xfe && body[1] === 0xff) return "utf-16be";
  if (body[0] === 0xff && body[1] === 0xfe) return "utf-16le";
  return undefined;
}

/** Decodes strictly with `label`; undefined for an unknown label or invalid bytes. */
function tryDecode(body: Uint8Array, label: string, truncated: boolean): DecodedHtml | undefined {
  let decoder: TextDecoder;
  try {
    decoder = new TextDecoder(label.trim(), { fatal: true });
  } catch {
    return undefined; // not an encoding label
  }
  if (decoder.encoding === "windows-1252") {
    return { text: decodeWindows1252(body), encoding: "windows-1252" };
  }
  try {
    // `stream: true` leaves an incomplete sequence at the end buffered, not an error.
    return { text: decoder.decode(body, { stream: truncated }), encoding: decoder.encoding };
  } catch {
    return undefined;
  }
}

/** The charset of the first `<meta charset>` or `<meta http-equiv="content-type">` in `head`. */
function metaCharset(head: string): string | undefined {
  let found: string | undefined;
  const sink: HtmlSink = {
    openTag(name, attributes) {
      if (found !== undefined || name !== "meta") return;
      const charset = attributes.get("charset")?.trim();
      if (charset) {
        found = charset;
        return;
      }
      const httpEquiv = attributes.get("http-equiv")?.trim().toLowerCase();
      const content = attributes.get("content");
      if (httpEquiv === "content-type" && content !== undefined) {
        found = charsetParameter(content);
      }
    },
    closeTag() {},
    text() {},
  };
  scanHtml(head, sink);
  return found;
}

/**
 * The `encoding` pseudo-attribute of an XML declaration that opens the
 * document (`<?xml version="1.0" encoding="iso-8859-1"?>`), after optional
 * white space. The declaration is a fixed little grammar, not HTML.
 */
function xmlDeclarationEncoding(head: string): string | undefined {
  const start = head.trimStart();
  if (!start.startsWith("<?xml")) return undefined;
  const end = start.indexOf("?>");
  const declaration = start.slice(5, end === -1 ? undefined : end);
  const at = declaration.indexOf("encoding");
  if (at === -1) return undefined;
  let rest = declaration.slice(at + "encoding".length).trimStart();
  if (!rest.startsWith("=")) return undefined;
  rest = rest.slice(1).trimStart();
  const quote = rest[0];
  if (quote !== '"' && quote !== "'") return undefined;
  const close = rest.indexOf(quote, 1);
  if (close === -1) return undefined;
  const value = rest.slice(1, close).trim();
  return value === "" ? undefined : value;
}
