/**
 * The GPU pool of a repro: `--gpus 0,1,2,3`, else CUDA_VISIBLE_DEVICES, else the indices that
 * `nvidia-smi` lists, else none. `--gpus none` (or an empty list) means no GPUs.
 */
import { execa } from "execa";
import { InputError } from "./errors.ts";

/** Parse a comma-separated GPU list (ids or UUIDs). `where` names its source in errors. */
export function parseGpuList(list: string, where: string): string[] {
  const t = list.trim();
  if (t === "" || t.toLowerCase() === "none") return [];
  const ids = t.split(",").map((s) => s.trim());
  for (const id of ids) {
    if (!/^[A-Za-z0-9_:.-]+$/.test(id)) {
      throw new InputError(`${where}: bad GPU id ${JSON.stringify(id)} in ${JSON.stringify(list)}; expected a comma-separated list such as 0,1,2,3 (or "none")`);
    }
  }
  const dup = ids.find((id, i) => ids.indexOf(id) !== i);
  if (dup !== undefined) throw new InputError(`${where}: GPU id ${dup} is listed twice in ${JSON.stringify(list)}`);
  return ids;
}

async function nvidiaSmi(): Promise<string[]> {
  const r = await execa("nvidia-smi", ["--query-gpu=index", "--format=csv,noheader"], { timeout: 10_000, reject: false });
  if (r.failed) return [];
  return r.stdout
    .split("\n")
    .map((s) => s.trim())
    .filter((s) => /^\d+$/.test(s));
}

export interface GpuPool {
  ids: string[];
  source: "--gpus" | "CUDA_VISIBLE_DEVICES" | "nvidia-smi" | "none";
}

/**
 * `detect: false` skips nvidia-smi (slow on some nodes): used when no stage that will run needs a
 * GPU of the pool, so a no-op repro never pays for it. The flag and the variable are still checked.
 */
export async function resolveGpuPool(flag: string | undefined, env: NodeJS.ProcessEnv = process.env, detect = true): Promise<GpuPool> {
  if (flag !== undefined) return { ids: parseGpuList(flag, "--gpus"), source: "--gpus" };
  const cvd = env.CUDA_VISIBLE_DEVICES;
  if (cvd !== undefined) {
    // "-1" / "NoDevFiles" (set by some schedulers) mean no GPU
    if (cvd.trim() === "-1" || cvd.trim() === "NoDevFiles") return { ids: [], source: "CUDA_VISIBLE_DEVICES" };
    return { ids: parseGpuList(cvd, "CUDA_VISIBLE_DEVICES"), source: "CUDA_VISIBLE_DEVICES" };
  }
  if (!detect) return { ids: [], source: "none" };
  const smi = await nvidiaSmi();
  if (smi.length) return { ids: smi, source: "nvidia-smi" };
  return { ids: [], source: "none" };
}
