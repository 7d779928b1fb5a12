// One training example as the trainer sees it: the text after the chat template, token by token.
// Props (from training/token_view.py TokenView.to_dict): pieces = [[text, kind, tokens]], kind one of
// "trained" (counts in the loss), "context" (read only), "cut" (past max_length); counts; max_length;
// labels: the legend's words per kind, in the chat's language (assistant/token_flow.py).
export default function TokenView() {
  const styles = {
    trained: "bg-green-200 text-green-950 dark:bg-green-800 dark:text-green-50",
    context: "text-muted-foreground",
    cut: "line-through opacity-50",
  };
  const show = (text) => text.replace(/\n/g, "↵\n");
  return (
    <div className="w-full rounded-md border p-3" id="token-view">
      <div className="mb-2 flex flex-wrap gap-3 text-xs">
        {["trained", "context", "cut"].map((kind) => (
          <span key={kind} className={"rounded px-1 " + styles[kind]}>
            {props.labels[kind]}: {props.counts[kind]}
          </span>
        ))}
      </div>
      <pre className="whitespace-pre-wrap break-words font-mono text-xs leading-6">
        {props.pieces.map(([text, kind, tokens], i) => (
          <span
            key={i}
            data-kind={kind}
            title={props.labels[kind] + (tokens > 1 ? ` (${tokens})` : "")}
            className={"rounded-sm border-r border-dotted border-gray-400 " + styles[kind]}
          >
            {show(text)}
          </span>
        ))}
      </pre>
    </div>
  );
}
