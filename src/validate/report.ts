// `wasmerang validate` output: one line per problem (`file: path: message`, warnings marked), or
// JSON for tools; and the exit status: 0 clean, 1 problems (warnings count only with --strict).
import { formatProblem } from "../envoy/errors.js";
import type { FileReport } from "./files.js";

export type OutputFormat = "text" | "json";

export function renderReports(reports: FileReport[], format: OutputFormat): string {
  if (format === "json") {
    const rows = reports.flatMap((report) => report.problems.map((problem) => ({ file: report.file, ...problem })));
    return `${JSON.stringify(rows, null, 2)}\n`;
  }
  const lines: string[] = [];
  for (const report of reports) {
    for (const problem of report.problems) {
      const line = formatProblem(problem.severity === "warning" ? { ...problem, message: `warning: ${problem.message}` } : problem);
      lines.push(`${report.file}: ${line}`);
    }
    for (const note of report.notes) lines.push(`${report.file}: ${note}`);
    if (report.problems.length === 0 && report.notes.length === 0) lines.push(`${report.file}: OK`);
  }
  return lines.length === 0 ? "" : `${lines.join("\n")}\n`;
}

export function exitStatus(reports: FileReport[], strict: boolean): 0 | 1 {
  const failing = reports.some((report) => report.problems.some((problem) => problem.severity === "error" || strict));
  return failing ? 1 : 0;
}
