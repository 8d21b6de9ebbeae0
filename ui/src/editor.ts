// The PromQL editor: CodeMirror 6 with Prometheus's own PromQL language
// package (@prometheus-io/codemirror-promql, the version of the
// Prometheus module the server's engine is), completing metric names,
// label names and label values from the tenant's data through the API.
import { autocompletion, closeBrackets, closeBracketsKeymap, completionKeymap } from '@codemirror/autocomplete';
import { defaultKeymap, history, historyKeymap, insertNewlineAndIndent } from '@codemirror/commands';
import { bracketMatching, HighlightStyle, indentOnInput, syntaxHighlighting } from '@codemirror/language';
import { lintKeymap } from '@codemirror/lint';
import { EditorState, Prec } from '@codemirror/state';
import { drawSelection, EditorView, highlightSpecialChars, keymap, placeholder } from '@codemirror/view';
import { tags } from '@lezer/highlight';
import { type CompleteConfiguration, PromQLExtension } from '@prometheus-io/codemirror-promql';
import { nodeFetch } from './api';
import { session } from './session';

const highlight = HighlightStyle.define([
  { tag: tags.number, color: '#0b7a3e' },
  { tag: tags.string, color: '#a3154a' },
  { tag: tags.keyword, color: '#0f4c9a', fontWeight: '600' },
  { tag: tags.function(tags.variableName), color: '#0f4c9a' },
  { tag: tags.operatorKeyword, color: '#7c3aed', fontWeight: '600' },
  { tag: tags.modifier, color: '#7c3aed' },
  { tag: tags.labelName, color: '#b45309' },
  { tag: tags.operator, color: '#475569' },
  { tag: tags.logicOperator, color: '#7c3aed' },
  { tag: tags.arithmeticOperator, color: '#475569' },
  { tag: tags.variableName, color: '#0f172a' },
  { tag: tags.comment, color: '#64748b', fontStyle: 'italic' },
  { tag: tags.invalid, color: '#dc2626' },
]);

const theme = EditorView.theme({
  '&': { fontSize: '14px', backgroundColor: '#fff' },
  '&.cm-focused': { outline: 'none' },
  '.cm-content': { fontFamily: 'var(--mono)', padding: '9px 0', caretColor: '#0f172a' },
  '.cm-line': { padding: '0 12px' },
  '.cm-scroller': { fontFamily: 'var(--mono)', lineHeight: '1.5' },
  '.cm-placeholder': { color: '#94a3b8' },
  '.cm-matchingBracket': { backgroundColor: '#e0f2fe', outline: '1px solid #7dd3fc' },
  '.cm-tooltip': { border: '1px solid #cbd5e1', borderRadius: '6px', boxShadow: '0 6px 20px rgba(15,23,42,.12)', overflow: 'hidden' },
  '.cm-tooltip.cm-tooltip-autocomplete > ul': { fontFamily: 'var(--mono)', fontSize: '13px', maxHeight: '18em' },
  '.cm-tooltip.cm-tooltip-autocomplete > ul > li': { padding: '3px 10px 3px 6px' },
  '.cm-tooltip-autocomplete ul li[aria-selected]': { background: '#155e75', color: '#fff' },
  '.cm-completionDetail': { color: '#94a3b8', fontStyle: 'normal', marginLeft: '1em' },
  '.cm-completionInfo': { fontFamily: 'var(--sans)', fontSize: '12px', padding: '6px 10px' },
  '.cm-diagnostic': { fontFamily: 'var(--sans)', fontSize: '13px' },
});

/** Completion from the API as the session's tenant; rebuilt when the session changes. */
function completion(): CompleteConfiguration {
  return {
    remote: {
      url: '',
      apiPrefix: '/api/v1',
      // Headers per request, so that a new token or tenant applies at once.
      fetchFn: (input: RequestInfo, init?: RequestInit) => {
        const headers = new Headers(init?.headers);
        for (const [k, v] of Object.entries(session.headers())) headers.set(k, v);
        return nodeFetch(input, { ...init, headers });
      },
      // Names and values of series seen in the last 12 hours, as
      // Prometheus's own UI asks.
      lookbackInterval: 12 * 3600 * 1000,
      httpMethod: 'GET',
      cache: { maxAge: 5 * 60 * 1000 },
    },
  };
}

export interface Editor {
  view: EditorView;
  value(): string;
  set(expr: string): void;
  focus(): void;
}

/** Creates the editor in parent; run is called on Enter (Shift+Enter adds a line). */
export function createEditor(parent: HTMLElement, initial: string, run: () => void): Editor {
  const promql = new PromQLExtension().activateCompletion(true).activateLinter(true).setComplete(completion());
  // A new tenant or token: drop the cached names of the old one.
  session.onChange(() => promql.setComplete(completion()));
  const view = new EditorView({
    parent,
    state: EditorState.create({
      doc: initial,
      extensions: [
        highlightSpecialChars(),
        history(),
        drawSelection(),
        indentOnInput(),
        bracketMatching(),
        closeBrackets(),
        autocompletion({ icons: false, activateOnTyping: true }),
        syntaxHighlighting(highlight),
        placeholder('Expression (press Enter to run, Shift+Enter for a new line)'),
        EditorView.lineWrapping,
        theme,
        promql.asExtension(),
        keymap.of([...closeBracketsKeymap, ...defaultKeymap, ...historyKeymap, ...completionKeymap, ...lintKeymap]),
        // After autocompletion's own keymap (same precedence, earlier in
        // the list), so that Enter accepts a completion when the list is open.
        Prec.highest(
          keymap.of([
            { key: 'Enter', run: () => (run(), true) },
            { key: 'Shift-Enter', run: insertNewlineAndIndent },
          ]),
        ),
      ],
    }),
  });
  return {
    view,
    value: () => view.state.doc.toString(),
    set: (expr: string) => {
      if (expr !== view.state.doc.toString()) view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: expr } });
    },
    focus: () => view.focus(),
  };
}
