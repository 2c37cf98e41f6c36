// A small SVG bar chart of the runner and HAProxy relative to a direct connection.

export function renderChart(results: Record<string, Record<string, number>>, scenarios: { name: string; higherIsBetter: boolean }[]): string {
  const series = ["haproxy", "runner", "egress router"];
  const colors = ["#8888aa", "#2b8a3e", "#e67700"];
  const rowHeight = 70;
  const width = 760;
  const left = 240;
  const scale = 420;
  const rows = scenarios.map((scenario, i) => {
    const values = results[scenario.name] ?? {};
    const direct = values.direct ?? 1;
    const bars = series.map((name, k) => {
      const value = values[name];
      if (value === undefined) return "";
      // Relative performance: 1.0 is as good as a direct connection.
      const relative = scenario.higherIsBetter ? value / direct : direct / value;
      const y = 30 + i * rowHeight + k * 18;
      return `<rect x="${left}" y="${y}" width="${Math.max(1, Math.min(1.2, relative) * scale).toFixed(1)}" height="14" fill="${colors[k]}"/>` +
        `<text x="${left + Math.min(1.2, relative) * scale + 6}" y="${y + 11}" font-size="11">${relative.toFixed(2)}</text>`;
    }).join("");
    return `<text x="10" y="${44 + i * rowHeight}" font-size="12">${scenario.name}</text>${bars}`;
  }).join("\n");
  const legend = series.map((name, k) => `<rect x="${left + k * 140}" y="8" width="12" height="12" fill="${colors[k]}"/><text x="${left + k * 140 + 16}" y="18" font-size="12">${name}</text>`).join("");
  const height = 40 + scenarios.length * rowHeight;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="10" y="18" font-size="13" font-weight="bold">Relative to a direct connection (1.0 = as fast)</text>
${legend}
<line x1="${left + scale}" y1="26" x2="${left + scale}" y2="${height - 4}" stroke="#999" stroke-dasharray="4 3"/>
${rows}
</svg>
`;
}
