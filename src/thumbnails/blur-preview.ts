/**
 * Blur previews: a picture as a tiny, already blurred and desaturated WebP
 * (at most PREVIEW_SIDE px a side, about a hundred bytes), returned as a
 * `data:image/webp;base64,…` URL. The moderation console shows it, scaled up
 * to the tile, in place of the picture while the picture is blurred (its
 * default): a page of 60 tiles then needs no thumbnail request and no CSS
 * blur filter (bench/README.md "Eighth session"). The real thumbnail is
 * fetched only when a moderator unblurs a tile.
 *
 * The blur is baked in: the preview is meant to be as unreadable as the
 * console's CSS blur (`blur(18px)` on a picture about 200 px wide, i.e. a
 * standard deviation of ~9 % of its width) so scaling it up shows nothing the
 * CSS blur would not. The desaturation matches the console's `saturate(0.6)`.
 */
import type sharp from "sharp";
import { loadSharp } from "./load-sharp.js";

/** The preview's longer side, px. */
const PREVIEW_SIDE = 32;
/** Gaussian sigma in preview pixels: 9 % of PREVIEW_SIDE (see the note above). */
const PREVIEW_SIGMA = 3;
const PREVIEW_SATURATION = 0.6;
const PREVIEW_QUALITY = 50;
const PREVIEW_PREFIX = "data:image/webp;base64,";

/**
 * The blur preview of `source` (a still; the first frame of an animation),
 * upright after its EXIF orientation. `limitInputPixels` and
 * `timeoutSeconds` as the thumbnailer's: the caller has already decided the
 * picture may be decoded. Throws what sharp throws for unreadable input.
 */
export async function renderBlurPreview(
  source: Buffer,
  options: { readonly limitInputPixels: number; readonly timeoutSeconds: number },
): Promise<string> {
  const load: typeof sharp = await loadSharp();
  const bytes = await load(source, { limitInputPixels: options.limitInputPixels })
    .timeout({ seconds: options.timeoutSeconds })
    .autoOrient()
    // A picture smaller than the preview is still blurred (never enlarged).
    .resize(PREVIEW_SIDE, PREVIEW_SIDE, { fit: "inside", withoutEnlargement: true })
    .blur(PREVIEW_SIGMA)
    .modulate({ saturation: PREVIEW_SATURATION })
    .webp({ quality: PREVIEW_QUALITY })
    .toBuffer();
  return PREVIEW_PREFIX + bytes.toString("base64");
}
