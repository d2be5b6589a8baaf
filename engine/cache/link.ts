/**
 * Placing a cache object at a path: reflink (copy-on-write clone: no data copied, no sharing of
 * later writes), hardlink (same inode: the file is read-only, as the object), or copy. The first
 * type of the configured order that this file system supports is used; a type that fails with
 * "not supported here" is not tried again in this process.
 */
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import crypto from "node:crypto";
import type { LinkType } from "./settings.ts";

/** Errors meaning "this link type does not work between these places" (try the next type). */
const UNSUPPORTED = new Set(["ENOTSUP", "EOPNOTSUPP", "EXDEV", "EINVAL", "ENOSYS", "EPERM", "EMLINK", "ENOTTY", "EBADF"]);

export class Linker {
  private readonly failed = new Set<LinkType>();
  /** How many files were placed with each type (tests, `checkout` summary). */
  readonly counts: Record<LinkType, number> = { reflink: 0, hardlink: 0, copy: 0 };

  constructor(readonly order: LinkType[]) {}

  /**
   * Place `src` at `dest` (which must not exist). `writable`: the placed file must be safe to
   * write (persist outs): never a hardlink. Returns the type used.
   */
  async place(src: string, dest: string, writable = false): Promise<LinkType> {
    let last: unknown;
    for (const t of this.order) {
      if (this.failed.has(t) || (writable && t === "hardlink")) continue;
      try {
        if (t === "reflink") await fsp.copyFile(src, dest, fs.constants.COPYFILE_FICLONE_FORCE);
        else if (t === "hardlink") await fsp.link(src, dest);
        else await fsp.copyFile(src, dest);
        if (t !== "hardlink") await fsp.chmod(dest, 0o644);
        this.counts[t]++;
        return t;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code ?? "";
        if (!UNSUPPORTED.has(code)) throw e;
        this.failed.add(t);
        last = e;
        await fsp.rm(dest, { force: true });
      }
    }
    if (writable && !this.order.some((t) => t !== "hardlink")) {
      // only hardlinks are configured, but this out must stay writable: copy it
      await fsp.copyFile(src, dest);
      await fsp.chmod(dest, 0o644);
      this.counts.copy++;
      return "copy";
    }
    throw new Error(`cannot place ${src} at ${dest} with any of ${this.order.join(", ")}: ${(last as Error)?.message ?? "not supported"}`);
  }

  /** The most used type so far (for messages). */
  used(): LinkType | null {
    const best = (Object.entries(this.counts) as [LinkType, number][]).sort((a, b) => b[1] - a[1])[0]!;
    return best[1] > 0 ? best[0] : null;
  }
}

/**
 * Which link type works between the cache directory and the project directory, by trying each
 * on a scratch file (for `status`). Returns the type and why earlier types were skipped.
 */
export async function probeLinkType(cacheDir: string, projectDir: string, order: LinkType[]): Promise<{ type: LinkType | null; skipped: string[] }> {
  const tag = crypto.randomBytes(4).toString("hex");
  const tmpDir = path.join(cacheDir, "tmp");
  await fsp.mkdir(tmpDir, { recursive: true });
  const src = path.join(tmpDir, `probe-${tag}`);
  const dest = path.join(projectDir, `.pipeline-linkprobe-${tag}`);
  const skipped: string[] = [];
  await fsp.writeFile(src, "probe");
  try {
    for (const t of order) {
      try {
        if (t === "reflink") await fsp.copyFile(src, dest, fs.constants.COPYFILE_FICLONE_FORCE);
        else if (t === "hardlink") await fsp.link(src, dest);
        else await fsp.copyFile(src, dest);
        return { type: t, skipped };
      } catch (e) {
        skipped.push(`${t}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      } finally {
        await fsp.rm(dest, { force: true });
      }
    }
    return { type: null, skipped };
  } finally {
    await fsp.rm(src, { force: true });
  }
}
