// Parsing and formatting of durations, times, numbers and label sets.

const units: [string, number][] = [
  ['y', 365 * 24 * 3600],
  ['w', 7 * 24 * 3600],
  ['d', 24 * 3600],
  ['h', 3600],
  ['m', 60],
  ['s', 1],
  ['ms', 0.001],
];

/** Parses a Prometheus duration ("1h30m", "15s", "500ms") into seconds; null if it is not one. */
export function parseDuration(s: string): number | null {
  s = s.trim();
  if (s === '') return null;
  if (/^\d+(\.\d+)?$/.test(s)) return parseFloat(s); // bare seconds, as the API takes them
  const re = /(\d+)(ms|y|w|d|h|m|s)/g;
  let total = 0;
  let pos = 0;
  for (let m = re.exec(s); m; m = re.exec(s)) {
    if (m.index !== pos) return null;
    pos = re.lastIndex;
    total += parseInt(m[1], 10) * units.find((u) => u[0] === m![2])![1];
  }
  return pos === s.length && total > 0 ? total : null;
}

/** Formats seconds as a Prometheus duration: 5400 -> "1h30m". */
export function formatDuration(sec: number): string {
  if (!(sec > 0)) return '0s';
  let ms = Math.round(sec * 1000);
  let out = '';
  for (const [u, f] of units) {
    const n = Math.floor(ms / Math.round(f * 1000));
    if (n > 0) {
      out += n + u;
      ms -= n * Math.round(f * 1000);
    }
  }
  return out;
}

/** "2026-11-21 14:03:07" in local time. */
export function formatTime(unixSec: number, seconds = true): string {
  const d = new Date(unixSec * 1000);
  const p = (n: number) => String(n).padStart(2, '0');
  const date = `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
  return `${date} ${p(d.getHours())}:${p(d.getMinutes())}${seconds ? ':' + p(d.getSeconds()) : ''}`;
}

/**
 * Parses a time typed by a person, in local time: "2026-11-21 14:03",
 * "2026-11-21 14:03:07", "2026-11-21T14:03", or unix seconds. null if
 * it is none of those.
 */
export function parseTime(v: string): number | null {
  v = v.trim();
  if (/^\d{9,}(\.\d+)?$/.test(v)) return parseFloat(v);
  const m = v.match(/^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2})(?::(\d{2}))?$/);
  if (!m) return null;
  const d = new Date(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +(m[6] ?? 0));
  return Number.isNaN(d.getTime()) ? null : d.getTime() / 1000;
}

/** 12345 -> "12,345". */
export function formatInt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** A sample value for people: up to 6 significant digits, exponent past 1e15. */
export function formatValue(v: number | null | undefined): string {
  if (v === null || v === undefined) return '';
  if (Number.isNaN(v)) return 'NaN';
  if (!Number.isFinite(v)) return v > 0 ? '+Inf' : '-Inf';
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e15 || a < 1e-4) return v.toExponential(3);
  return String(parseFloat(v.toPrecision(6)));
}

/** Axis labels: 1500 -> "1.5k", 0.002 -> "2m". */
export function formatSI(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  const prefixes: [number, string][] = [
    [1e15, 'P'], [1e12, 'T'], [1e9, 'G'], [1e6, 'M'], [1e3, 'k'], [1, ''], [1e-3, 'm'], [1e-6, 'µ'], [1e-9, 'n'],
  ];
  for (const [f, p] of prefixes) {
    if (a >= f) return String(parseFloat((v / f).toPrecision(4))) + p;
  }
  return v.toExponential(2);
}

/** A bytes count: 1536 -> "1.5 KiB". */
export function formatBytes(n: number): string {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(1)} ${u[i]}`;
}

/** A PromQL string literal for a label value. */
export function quote(v: string): string {
  return JSON.stringify(v);
}

/** The series' label set as PromQL writes it: name{a="b", c="d"}. */
export function formatLabels(metric: Record<string, string>): string {
  const name = metric.__name__ ?? '';
  const rest = Object.keys(metric)
    .filter((k) => k !== '__name__')
    .sort()
    .map((k) => `${k}=${quote(metric[k])}`);
  return rest.length || !name ? `${name}{${rest.join(', ')}}` : name;
}

/** Parses a sample value of the API ("1.5", "NaN", "+Inf"). */
export function parseSample(s: string): number {
  switch (s) {
    case '+Inf':
      return Infinity;
    case '-Inf':
      return -Infinity;
    case 'NaN':
      return NaN;
  }
  return parseFloat(s);
}
