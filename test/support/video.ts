/** Video-thumbnail test helpers: docs/media.md's recommended command and clips made by ffmpeg. */
import { spawnSync } from "node:child_process";
import { join } from "node:path";

/** The command docs/media.md recommends (keep the two in step). */
export const RECOMMENDED_VIDEO_COMMAND = [
  "ffmpeg",
  "-nostdin",
  "-loglevel",
  "error",
  "-protocol_whitelist",
  "file",
  "-format_whitelist",
  "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,ogg,mpegts,mpeg,flv",
  "-max_pixels",
  "{max_pixels}",
  "-i",
  "file:{input}",
  "-map",
  "0:v:0",
  "-an",
  "-sn",
  "-dn",
  "-vf",
  "scale='min(iw,1280)':'min(ih,1280)':force_original_aspect_ratio=decrease,thumbnail=50",
  "-frames:v",
  "1",
  "-f",
  "image2",
  "-c:v",
  "png",
  "{output}",
];

/** Whether ffmpeg can be run. */
export const haveFfmpeg = spawnSync("ffmpeg", ["-version"], { stdio: "ignore" }).status === 0;

/** Makes `<dir>/<name>.mp4` from a lavfi graph (one output pad named `out0`); returns its path. */
export function clipFile(dir: string, name: string, graph: string): string {
  const file = join(dir, `${name}.mp4`);
  const made = spawnSync(
    "ffmpeg",
    ["-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i", graph, "-c:v", "mpeg4", file],
    { encoding: "utf8" },
  );
  if (made.status !== 0) throw new Error(`ffmpeg could not make ${name}: ${made.stderr}`);
  return file;
}
