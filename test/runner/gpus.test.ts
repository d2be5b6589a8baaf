import { describe, expect, it } from "vitest";
import { parseGpuList, resolveGpuPool } from "../../engine/gpus.ts";

describe("GPU pool", () => {
  it("--gpus wins, then CUDA_VISIBLE_DEVICES; 'none' and '' mean no GPUs", async () => {
    expect(await resolveGpuPool("0,1", { CUDA_VISIBLE_DEVICES: "5" })).toEqual({ ids: ["0", "1"], source: "--gpus" });
    expect(await resolveGpuPool(undefined, { CUDA_VISIBLE_DEVICES: "2,3" })).toEqual({ ids: ["2", "3"], source: "CUDA_VISIBLE_DEVICES" });
    expect(await resolveGpuPool(undefined, { CUDA_VISIBLE_DEVICES: "" })).toEqual({ ids: [], source: "CUDA_VISIBLE_DEVICES" });
    expect(await resolveGpuPool(undefined, { CUDA_VISIBLE_DEVICES: "-1" })).toEqual({ ids: [], source: "CUDA_VISIBLE_DEVICES" });
    expect(await resolveGpuPool("none", {})).toEqual({ ids: [], source: "--gpus" });
    // no flag, no variable: nvidia-smi (absent on this machine -> none)
    const auto = await resolveGpuPool(undefined, {});
    expect(["nvidia-smi", "none"]).toContain(auto.source);
  });

  it("accepts ids and UUIDs, rejects junk and duplicates with a clear message", () => {
    expect(parseGpuList(" 0, 1 ,2", "--gpus")).toEqual(["0", "1", "2"]);
    expect(parseGpuList("GPU-8c2f0a1e-aaaa,MIG-1", "--gpus")).toEqual(["GPU-8c2f0a1e-aaaa", "MIG-1"]);
    expect(() => parseGpuList("0,,1", "--gpus")).toThrow(/--gpus: bad GPU id "" in "0,,1"/);
    expect(() => parseGpuList("0 1", "--gpus")).toThrow(/bad GPU id "0 1"/);
    expect(() => parseGpuList("1,1", "CUDA_VISIBLE_DEVICES")).toThrow(/CUDA_VISIBLE_DEVICES: GPU id 1 is listed twice/);
  });
});
