/**
 * Plain-text tables for people: columns padded to their widest cell, numbers right-aligned, two
 * spaces between columns, no borders (so `awk '{print $2}'` still works). Hand-written rather than
 * a dependency: this is all the CLI needs, and the table packages on npm bring box drawing and
 * colour handling it would switch off. Pure.
 */
export function formatTable(headers: readonly string[], rows: readonly (readonly unknown[])[]): string {
  const cells = [headers, ...rows].map((row) => headers.map((_, i) => cellText(row[i])));
  const widths = headers.map((_, i) => Math.max(...cells.map((row) => row[i].length)));
  const numeric = headers.map((_, i) => rows.length > 0 && rows.every((row) => isNumberCell(row[i])));
  return cells
    .map((row) =>
      row
        .map((cell, i) => (numeric[i] ? cell.padStart(widths[i]) : cell.padEnd(widths[i])))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

function cellText(value: unknown): string {
  if (value === null || value === undefined || value === '') return '-';
  return String(value);
}

const isNumberCell = (value: unknown) =>
  typeof value === 'number' || value === null || value === undefined || value === '-';
