// Small helpers that build the page. Every text from the API goes in through textContent, never as markup.

export const $ = (id) => document.getElementById(id);

export function showError(message) {
  $('error').textContent = message;
  $('error').hidden = message === '';
}

// An element with a class and children (strings become text nodes).
export function el(tag, className = '', ...children) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  node.append(...children.map((c) => (c instanceof Node ? c : String(c ?? ''))));
  return node;
}

// A table row; a cell is a text, a Node, or {text, number: true} for a right-aligned number.
export function row(cells, numbers = []) {
  const tr = document.createElement('tr');
  cells.forEach((cell, i) => {
    const td = document.createElement('td');
    if (cell instanceof Node) td.append(cell);
    else td.textContent = String(cell ?? '');
    if (numbers.includes(i)) td.className = 'number';
    tr.append(td);
  });
  return tr;
}

export function link(href, text) {
  const a = document.createElement('a');
  a.href = href;
  a.textContent = text;
  return a;
}

export function button(text, onClick, className = '') {
  const b = el('button', className, text);
  b.type = 'button';
  b.addEventListener('click', onClick);
  return b;
}

// A progress bar with a text beside it, e.g. "downloading 66% (28672/42892)".
export function bar(value, max, label) {
  const meter = document.createElement('progress');
  meter.max = Math.max(max, 1);
  meter.value = Math.min(value, meter.max);
  meter.setAttribute('aria-label', label);
  return el('span', 'bar', meter, el('span', '', label));
}

export const percent = (part, whole) => (whole > 0 ? Math.floor((100 * part) / whole) : 0);

// A rollout's or a wave's progress: applied of its targets that are not skipped.
export function appliedBar(counts, targets) {
  const due = targets - counts.skipped;
  return bar(counts.applied, due, `${counts.applied} of ${due} applied (${percent(counts.applied, due)}%)`);
}

// A definition list of [term, value] pairs.
export function facts(pairs) {
  const dl = el('dl', 'facts');
  for (const [term, value] of pairs) dl.append(el('dt', '', term), el('dd', '', value));
  return dl;
}

// The filled fields of a form as query parameters (empty ones left out).
export function formQuery(form) {
  const query = new URLSearchParams();
  for (const [name, value] of new FormData(form)) {
    if (typeof value === 'string' && value.trim() !== '') query.append(name, value.trim());
  }
  return query;
}

// A comma- or space-separated list as an array of its non-empty items.
export const list = (text) => text.split(/[\s,]+/).filter((item) => item !== '');

// "2026-12-06T10:00:00Z" shown in the reader's own time zone; "never" for null.
export function when(timestamp) {
  return timestamp ? new Date(timestamp).toLocaleString() : 'never';
}

// A second click confirms: the first shows `question` in the note `noteId`, the same question again says yes. No
// dialog (a dialog would stop a keyboard user's flow and the tests' pages alike).
export function confirmed(noteId, question) {
  const note = $(noteId);
  if (note.dataset.question === question) {
    note.dataset.question = '';
    note.hidden = true;
    return true;
  }
  note.dataset.question = question;
  note.textContent = `${question} Click again to confirm.`;
  note.hidden = false;
  return false;
}
