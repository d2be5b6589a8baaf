/** The cache line of `status`: where the cache is and which link type places outs here. */
import fs from "node:fs";
import path from "node:path";
import type { ProjectContext } from "../context.ts";
import { probeLinkType } from "./link.ts";
import { cacheSettings } from "./settings.ts";

export async function cacheLine(ctx: ProjectContext): Promise<{ dir: string; link: string | null; skipped: string[]; remote: string | null; text: string } | null> {
  const s = cacheSettings(ctx);
  if (!fs.existsSync(s.dir)) return null;
  let link: string | null = null;
  let skipped: string[] = [];
  try {
    const p = await probeLinkType(s.dir, ctx.root, s.link);
    link = p.type;
    skipped = p.skipped;
  } catch (e) {
    skipped = [(e as Error).message];
  }
  const rel = path.relative(ctx.root, s.dir);
  const shown = rel && !rel.startsWith("..") && !path.isAbsolute(rel) ? rel : s.dir;
  const why = skipped.length ? ` (${skipped.map((x) => x.replace(/:.*$/, "")).join(", ")} not supported here)` : "";
  const text =
    `cache: ${shown}${s.dirSource === "default" ? "" : ` (from ${s.dirSource})`}; outs are linked by ${link ?? "nothing (cannot write to the cache)"}${link ? why : ""}` +
    (s.remote ? `; remote: ${s.remote}${/^[a-z][a-z0-9+.-]*:\/\//i.test(s.remote) || fs.existsSync(s.remote) ? "" : " (not reachable)"}` : "");
  return { dir: s.dir, link, skipped, remote: s.remote ?? null, text };
}
