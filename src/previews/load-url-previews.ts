/**
 * Loads the URL-preview stack only when the config turns previews on.
 *
 * Why: previews are off by default, and their modules — the HTML tokenizer
 * (htmlparser2, entities), the oEmbed provider list, the Open Graph
 * extraction — took about 1.2 MiB of heap in every idle server that never
 * previews a URL (memory at rest, issue 15; docs/deployment.md). `createApp`
 * is synchronous, so its caller loads the factory first and passes it in
 * (AppOptions.urlPreviews); with previews off nothing is loaded at all.
 */
import type { Config } from "../config/config-schema.js";
import type { createUrlPreviews } from "./create-url-previews.js";

/** The factory of src/previews/create-url-previews.ts. */
export type UrlPreviewsFactory = typeof createUrlPreviews;

/** `createUrlPreviews` when `url_preview_enabled`, else undefined (nothing loaded). */
export async function loadUrlPreviews(config: Config): Promise<UrlPreviewsFactory | undefined> {
  if (!config.url_preview_enabled) return undefined;
  return (await import("./create-url-previews.js")).createUrlPreviews;
}
