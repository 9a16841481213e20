// The live feed: GET /v1/events, read with fetch because EventSource cannot send an Authorization header.
// Each event goes to onEvent(kind, data). A lost stream is opened again with Last-Event-ID, so no event is missed;
// the wait between tries grows from 1 s to 30 s and starts over once a stream works.

import { signedInKey } from './api.js';

let controller = null;
let lastId = null;

// The text/event-stream fields of one event block ("id: 7305-7\nevent: transition\ndata: {...}").
function parseBlock(block) {
  const event = { id: null, kind: 'message', data: '' };
  for (const line of block.split('\n')) {
    if (line.startsWith(':')) continue; // a comment: the server's keep-alive
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'id') event.id = value;
    else if (field === 'event') event.kind = value;
    else if (field === 'data') event.data += (event.data ? '\n' : '') + value;
  }
  return event;
}

async function readStream(signal, onEvent, onOpen) {
  const headers = { Authorization: `Bearer ${signedInKey()}`, Accept: 'text/event-stream' };
  if (lastId !== null) headers['Last-Event-ID'] = lastId;
  const answer = await fetch('/v1/events', { headers, signal, cache: 'no-store' });
  if (!answer.ok) throw new Error(`the event stream answered ${answer.status}`);
  onOpen();
  const reader = answer.body.pipeThrough(new TextDecoderStream()).getReader();
  let pending = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    pending += value.replace(/\r\n?/g, '\n');
    let end;
    while ((end = pending.indexOf('\n\n')) >= 0) {
      const event = parseBlock(pending.slice(0, end));
      pending = pending.slice(end + 2);
      if (event.id !== null) lastId = event.id;
      if (event.data === '') continue;
      let data = null;
      try {
        data = JSON.parse(event.data);
      } catch {
        continue; // not ours to show
      }
      onEvent(event.kind, data);
    }
  }
}

const sleep = (ms, signal) => new Promise((resolve) => {
  const timer = setTimeout(resolve, ms);
  signal.addEventListener('abort', () => { clearTimeout(timer); resolve(); }, { once: true });
});

// Follows the stream until stopLive(). onState('live' | 'reconnecting') says how the feed is doing.
export function startLive(onEvent, onState) {
  stopLive();
  controller = new AbortController();
  const { signal } = controller;
  (async () => {
    let wait = 1000;
    while (!signal.aborted) {
      try {
        await readStream(signal, onEvent, () => { wait = 1000; onState('live'); });
      } catch {
        // refused, lost or aborted: try again below unless stopped
      }
      if (signal.aborted) return;
      onState('reconnecting');
      await sleep(wait, signal);
      wait = Math.min(wait * 2, 30000);
    }
  })();
}

export function stopLive() {
  if (controller) controller.abort();
  controller = null;
  lastId = null;
}
