"""One line for bench/scripts/paired-default-runs.sh: RUN_FOLDER START END LOG."""
import json
import re
import sys

folder, start, end, log = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), open(sys.argv[4]).read()
final = [json.loads(line) for line in open(folder + "/metrics.jsonl")][-1]
ahead = re.search(r"ahead on \d+ spare CPU thread\(s\) in ([\d.]+) s.*?waited ([\d.]+) s", log)
print(folder.rstrip("/").split("/")[-1],
      "wall %.2f" % (end - start),
      "run %.2f" % final["seconds"],
      "growth %.3f" % final["growth_seconds"],
      "share %.2f" % (100 * final["growth_seconds"] / final["seconds"]),
      "ahead %s waited %s" % (ahead.group(1), ahead.group(2)) if ahead else "inline",
      final["widths"], final["test_accuracy"])
