/**
 * A photo-like generated image for the PDQ decode tests: smooth blobs
 * (blurred noise), gradients and fine grain — enough structure for a PDQ
 * quality of 100, deterministic per seed, no files needed.
 */
import sharp from "sharp";

/** A photo-like RGB image: smooth blobs (blurred noise), gradients and fine grain. */
export async function photoLike(width: number, height: number, seed: number): Promise<sharp.Sharp> {
  let a = seed >>> 0;
  const rand = () => {
    a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
    return a / 2 ** 32;
  };
  const small = 24;
  const coarse = Buffer.from(Array.from({ length: small * small * 3 }, () => rand() * 255));
  const base = await sharp(coarse, { raw: { width: small, height: small, channels: 3 } })
    .resize(width, height, { kernel: "cubic" })
    .blur(Math.max(1, width / 200))
    .raw()
    .toBuffer();
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      const grain = (rand() - 0.5) * 30;
      base[i] = Math.max(0, Math.min(255, (base[i] as number) * 0.8 + (x * 50) / width + grain));
      base[i + 1] = Math.max(0, Math.min(255, (base[i + 1] as number) * 0.8 + grain));
      base[i + 2] = Math.max(0, Math.min(255, (base[i + 2] as number) * 0.8 + (y * 50) / height));
    }
  }
  return sharp(base, { raw: { width, height, channels: 3 } });
}
