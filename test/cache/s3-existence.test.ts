/** The S3 remote's choice of how to find which objects a remote has (listing vs HEAD per object). */
import { describe, expect, it } from "vitest";
import { existenceCheck } from "../../engine/cache/s3-remote.ts";

describe("existenceCheck", () => {
  it("lists everything on a small remote, each folder on a big one, HEADs a few objects on a big one", () => {
    expect(existenceCheck(1000, 250, 4)).toBe("list all"); // ~1,000 objects there: 2 pages
    expect(existenceCheck(3000, 256, 4000)).toBe("list folders"); // ~1M there: 256 folders x 4 pages < 1,500
    expect(existenceCheck(100, 90, 4000)).toBe("head"); // 100 HEADs beat 90 x 4 pages
    expect(existenceCheck(600, 230, 0)).toBe("list all"); // an empty remote: one page
  });
});
