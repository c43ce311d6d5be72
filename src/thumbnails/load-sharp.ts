/**
 * sharp (and libvips with it) is loaded on first use, not at start-up.
 *
 * Why: the native addon maps libvips (about 7 MiB of shared library) and its
 * JavaScript adds a few more MiB of heap; a server that never thumbnails an
 * image (most requests are downloads) should not pay for it at rest (issue
 * 15, "Memory at rest"; docs/deployment.md). Importers keep sharp's types
 * with `import type`, which costs nothing at run time.
 */
import type sharp from "sharp";

/** sharp's default export: the function that opens an image. */
export type Sharp = typeof sharp;

let loading: Promise<Sharp> | undefined;

/**
 * sharp, loaded once; every later call gets the same module. A failed load
 * (a broken install) is not remembered, so the next caller tries again and
 * sees the error itself.
 */
export function loadSharp(): Promise<Sharp> {
  if (!loading) {
    loading = import("sharp").then(
      (module) => module.default,
      (error: unknown) => {
        loading = undefined;
        throw error;
      },
    );
  }
  return loading;
}
