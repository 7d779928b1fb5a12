// Two answers side by side: A (the fine-tuned model) and B (a baseline), with their costs.
// Props (from assistant/ab_flow.py): sides = {a, b}, each {label, kind, text, done, error, stats}.
export default function ABCompare() {
  const fmt = (value, digits, unit) => (value === null || value === undefined ? "–" : value.toFixed(digits) + unit);
  const Side = ({ name, side }) => (
    <div className="flex-1 min-w-0 rounded-md border p-3" data-side={name}>
      <div className="text-xs font-semibold uppercase text-muted-foreground">
        {name.toUpperCase()} · {side.label}
      </div>
      <pre className="ab-answer mt-2 whitespace-pre-wrap break-words text-sm font-mono">
        {side.text}{side.done ? "" : "▍"}
      </pre>
      {side.error && <div className="mt-2 text-sm text-red-600">⚠️ {side.error}</div>}
      {side.stats && (
        <div className="ab-stats mt-2 text-xs text-muted-foreground">
          prompt {side.stats.prompt_tokens} tok · completion {side.stats.completion_tokens} tok · first token{" "}
          {fmt(side.stats.ttft_s, 2, " s")} · latency {fmt(side.stats.latency_s, 2, " s")}
          {side.stats.f1 !== undefined && <span> · F1 {side.stats.f1.toFixed(2)}</span>}
        </div>
      )}
    </div>
  );
  return (
    <div className="flex w-full gap-3" id="ab-compare">
      <Side name="a" side={props.sides.a} />
      <Side name="b" side={props.sides.b} />
    </div>
  );
}
