// One training example as the trainer sees it: the text after the chat template, token by token.
// Props (from training/token_view.py TokenView.to_dict): pieces = [[text, kind, tokens]], kind one of
// "trained" (counts in the loss), "context" (read only), "cut" (past max_length); counts; max_length;
// labels: the legend's words per kind, in the chat's language (assistant/token_flow.py).
//
// Styled inline: Chainlit serves its own compiled Tailwind CSS, which holds only the classes its own UI uses
// (no bg-green-200, text-green-950, line-through, border-dotted, leading-6...), so a class missing there does
// nothing. The colours follow the theme without knowing it: the text takes Chainlit's --foreground and
// --muted-foreground variables (defined for :root and .dark), and the trained tokens' green is translucent, so it
// lies over the light or dark page and stays readable on both (tests/browser/test_rendering.py).
export default function TokenView() {
  const styles = {
    trained: { backgroundColor: "rgb(34 197 94 / 0.35)", color: "hsl(var(--foreground))" },
    context: { color: "hsl(var(--muted-foreground))" },
    cut: { color: "hsl(var(--muted-foreground))", textDecoration: "line-through", opacity: 0.5 },
  };
  // Chainlit's rounded-sm is 8 px (its --radius is large): a token gets 2 px, and a dotted line between tokens.
  const piece = { borderRadius: "2px", borderRight: "1px dotted hsl(var(--muted-foreground) / 0.5)" };
  const show = (text) => text.replace(/\n/g, "↵\n");
  return (
    <div className="w-full rounded-md border p-3" id="token-view">
      <div className="mb-2 flex flex-wrap gap-3 text-xs">
        {["trained", "context", "cut"].map((kind) => (
          <span key={kind} data-legend={kind} className="rounded px-1" style={styles[kind]}>
            {props.labels[kind]}: {props.counts[kind]}
          </span>
        ))}
      </div>
      <pre className="whitespace-pre-wrap break-words font-mono text-xs" style={{ lineHeight: "1.5rem" }}>
        {props.pieces.map(([text, kind, tokens], i) => (
          <span
            key={i}
            data-kind={kind}
            title={props.labels[kind] + (tokens > 1 ? ` (${tokens})` : "")}
            style={{ ...piece, ...styles[kind] }}
          >
            {show(text)}
          </span>
        ))}
      </pre>
    </div>
  );
}
