/**
 * Putting a preview together (Synapse `url_previewer._do_preview`,
 * media-gaps.md §1.2): a page's own tags win over its oEmbed data (Synapse
 * #19231: Mastodon and YouTube give full OpenGraph tags but oEmbed stubs);
 * `author_name` stands in for a missing title; the image found is replaced
 * by the stored copy's `mxc://` URI and facts; a direct image URL previews
 * as the image itself; every preview passes the key and value caps; and a
 * preview with nothing to show is `{}`, which clients hide.
 */
import type { OEmbedPreview } from "./oembed.js";
import { capOpenGraph, type OpenGraph } from "./open-graph.js";

/** How long a preview is fresh without an oEmbed `cache_age` (Synapse: 1 hour). */
export const DEFAULT_PREVIEW_TTL_MS = 60 * 60 * 1000;
/** No preview is fresh for longer than this (Synapse: 1 day). */
export const MAX_PREVIEW_TTL_MS = 24 * 60 * 60 * 1000;

/** Keys that make a preview worth showing; without any of them it is `{}`. */
const SHOWN_KEYS = ["og:title", "og:description", "og:image"] as const;

/**
 * The preview of an HTML page: its tags, over the oEmbed data of its
 * autodiscovery link when there was one.
 */
export function combineHtmlAndOEmbed(html: OpenGraph, oembed?: OEmbedPreview): OpenGraph {
  return finishPreview({ ...oembed?.og, ...html }, oembed?.authorName);
}

/** The preview of a URL answered by an oEmbed provider's endpoint. */
export function oembedOnlyPreview(oembed: OEmbedPreview): OpenGraph {
  return finishPreview({ ...oembed.og }, oembed.authorName);
}

/**
 * A preview made final: `authorName` as the title when there is none, the
 * caps applied, and `{}` when none of title, description and image is left.
 */
export function finishPreview(og: OpenGraph, authorName?: string): OpenGraph {
  const result = { ...og };
  if (!result["og:title"] && authorName) result["og:title"] = authorName;
  const capped = capOpenGraph(result);
  return SHOWN_KEYS.some((key) => capped[key] !== undefined) ? capped : {};
}

/** The http(s) or `data:` image URL a preview wants stored, if any (`og:image` before storing). */
export function previewImageUrl(og: OpenGraph): string | undefined {
  const image = og["og:image"];
  return typeof image === "string" && /^(https?:\/\/|data:)/i.test(image) ? image : undefined;
}

/** An image stored through the media pipeline for a preview. */
export interface StoredPreviewImage {
  /** `mxc://server/id` of the stored copy. */
  mxcUri: string;
  /** Its content type (`image/png`). */
  mediaType: string;
  /** Its size in bytes. */
  size: number;
  /** Pixel dimensions, when the image could be read. */
  width?: number;
  height?: number;
}

/**
 * `og` with its image replaced by the stored copy, or without `og:image`
 * when the image could not be stored (a failed image keeps the rest of the
 * preview, as in Synapse).
 */
export function withStoredImage(og: OpenGraph, image: StoredPreviewImage | undefined): OpenGraph {
  const result = { ...og };
  delete result["og:image"];
  if (image === undefined) return finishPreview(result);
  return finishPreview({ ...result, ...imageKeys(image) });
}

/**
 * The preview of a URL that is itself an image: the image and its facts,
 * and the file name of its `Content-Disposition` as the description.
 */
export function imagePreview(image: StoredPreviewImage, downloadName?: string): OpenGraph {
  const og: OpenGraph = imageKeys(image);
  if (downloadName) og["og:description"] = downloadName;
  return finishPreview(og);
}

function imageKeys(image: StoredPreviewImage): OpenGraph {
  const og: OpenGraph = {
    "og:image": image.mxcUri,
    "og:image:type": image.mediaType,
    "matrix:image:size": image.size,
  };
  if (image.width !== undefined && image.height !== undefined) {
    og["og:image:width"] = image.width;
    og["og:image:height"] = image.height;
  }
  return og;
}

/** How long a preview stays fresh: the oEmbed `cache_age` or one hour, at most one day. */
export function previewTtlMs(cacheAgeMs?: number): number {
  return Math.min(cacheAgeMs ?? DEFAULT_PREVIEW_TTL_MS, MAX_PREVIEW_TTL_MS);
}
