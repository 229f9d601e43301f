// The pairing page (README "Pairing in a browser"): plain script, no build step. It talks to the same
// routes as a bearer-token client, authenticated by the page's HttpOnly session cookie; the browser adds
// our Origin to every POST and DELETE, which the daemon checks.
'use strict';

const $ = (id) => document.getElementById(id);
const rows = new Map(); // session id → its list item
let pairing; // { id, source, timer } while a pairing panel is open

function notice(text) {
  $('notice').textContent = text;
  $('notice').hidden = !text;
}

async function call(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
  });
  if (res.status === 401) {
    window.location.reload(); // the login expired: back to the login page
    throw new Error('logged out');
  }
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(data.error || `HTTP ${res.status}`);
  return data;
}

/** `15551230001:3@s.whatsapp.net` → `+15551230001`. */
function phoneOf(jid) {
  const user = String(jid || '')
    .split('@')[0]
    .split(':')[0];
  return /^\d+$/.test(user) ? `+${user}` : user;
}

function who(jid, name) {
  return `${phoneOf(jid)}${name && name !== '~' ? ` (${name})` : ''}`;
}

function describe(session) {
  const parts = [session.state];
  if (session.pairing) parts.push(`pairing (${session.pairing})`);
  else if (session.connection && session.state === 'paired') parts.push(session.connection);
  if (session.owner && session.owner.id) parts.push(`owner ${session.owner.id}`);
  return parts.join(' · ');
}

function button(text, onClick) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = text;
  b.addEventListener('click', onClick);
  return b;
}

function renderRow(session) {
  let li = rows.get(session.id);
  if (!li) {
    li = document.createElement('li');
    li.dataset.session = session.id;
    const whoBox = document.createElement('div');
    whoBox.className = 'who';
    const title = document.createElement('strong');
    const state = document.createElement('div');
    state.className = 'state';
    whoBox.append(title, state);
    const actions = document.createElement('div');
    actions.className = 'actions';
    actions.append(
      button('Pair with QR', () => startPairing(session.id, 'qr')),
      button('Pair with phone number', () => askPhone(session.id)),
    );
    li.append(whoBox, actions);
    rows.set(session.id, li);
  }
  const [whoBox, actions] = li.children;
  const label = session.label ? ` — ${session.label}` : '';
  whoBox.children[0].textContent = `${session.id}${label}${session.phone ? ` ${who(session.jid, session.name)}` : ''}`;
  whoBox.children[1].textContent = describe(session);
  actions.hidden = session.state === 'paired';
  // Each button's name says which session it pairs, for screen readers that list buttons out of context.
  for (const b of actions.children) b.setAttribute('aria-description', `session ${session.id}`);
  return li;
}

async function refresh() {
  try {
    const { sessions } = await call('GET', '/sessions');
    const list = $('sessions');
    const seen = new Set();
    for (const session of sessions) {
      seen.add(session.id);
      const li = renderRow(session);
      if (li.parentNode !== list) list.append(li);
    }
    for (const [id, li] of rows) {
      if (!seen.has(id)) {
        li.remove();
        rows.delete(id);
      }
    }
    $('empty').hidden = sessions.length > 0;
  } catch (error) {
    notice(`Could not load the sessions: ${error.message}`);
  }
}

function openPanel(id) {
  closePanel();
  pairing = { id, source: undefined, timer: undefined, qrNumber: 0 };
  $('pairing-title').textContent = `Pairing ${id}`;
  $('pairing').hidden = false;
  $('phone-form').hidden = true;
  $('qr-box').hidden = true;
  $('code-box').hidden = true;
  $('cancel').hidden = false;
  $('close').hidden = true;
  $('pair-status').textContent = '';
  $('pairing').scrollIntoView({ block: 'nearest' });
}

function closePanel() {
  if (!pairing) return;
  pairing.source?.close();
  clearInterval(pairing.timer);
  pairing = undefined;
  $('pairing').hidden = true;
}

function askPhone(id) {
  openPanel(id);
  $('phone-form').hidden = false;
  $('phone').value = '';
  $('phone').focus();
}

function finished(text) {
  if (!pairing) return;
  pairing.source?.close();
  clearInterval(pairing.timer);
  $('qr-box').hidden = true;
  $('countdown').textContent = '';
  $('pair-status').textContent = text;
  $('cancel').hidden = true;
  $('close').hidden = false;
  void refresh();
}

function showQr(event) {
  const current = pairing;
  current.qrNumber++;
  // The image is drawn by the daemon from the QR on screen now, and needs the login cookie.
  $('qr').src = `/sessions/${encodeURIComponent(current.id)}/pair/qr.svg?n=${current.qrNumber}`;
  $('qr-box').hidden = false;
  $('pair-status').textContent = 'Waiting for the phone to scan…';
  clearInterval(current.timer);
  const expiresAt = Date.parse(event.expiresAt);
  const tick = () => {
    const seconds = Math.max(0, Math.round((expiresAt - Date.now()) / 1000));
    $('countdown').textContent = `Expires in ${seconds}s`;
  };
  tick();
  current.timer = setInterval(tick, 1000);
}

function follow(id) {
  // Plain `data:` messages (no event names: `open` and `error` are EventSource's own events).
  const source = new EventSource(`/sessions/${encodeURIComponent(id)}/pair`);
  pairing.source = source;
  source.onmessage = (message) => {
    if (!pairing || pairing.source !== source) return;
    const event = JSON.parse(message.data);
    if (event.event === 'qr') showQr(event);
    else if (event.event === 'code') {
      $('code').textContent = event.code;
      $('code-box').hidden = false;
      $('pair-status').textContent = 'Waiting for the code to be typed on the phone…';
    } else if (event.event === 'paired') {
      $('qr-box').hidden = true;
      $('code-box').hidden = true;
      $('pair-status').textContent = `Paired with ${who(event.jid, event.name)}; logging in…`;
    } else if (event.event === 'open') {
      finished(`Connected as ${who(event.jid, event.name)}`);
    } else if (event.event === 'error') {
      $('code-box').hidden = true;
      finished(`Not paired: ${event.message}`);
    }
  };
  source.onerror = () => {
    // The stream ends with the pairing; EventSource would reconnect and replay the outcome: no need.
    if (source.readyState === EventSource.CLOSED && pairing && pairing.source === source) {
      finished($('pair-status').textContent || 'The pairing stream closed.');
    }
  };
}

async function startPairing(id, method, phone) {
  if (method === 'qr') openPanel(id);
  $('pair-status').textContent = 'Connecting to WhatsApp…';
  try {
    await call('POST', `/sessions/${encodeURIComponent(id)}/pair`, method === 'qr' ? { method } : { method, phone });
    if (pairing && pairing.id === id) follow(id);
  } catch (error) {
    if (pairing && pairing.id === id) finished(`Could not start pairing: ${error.message}`);
  }
}

function init() {
  $('phone').addEventListener('input', () => {
    // Digits only: the country code and the number, as WhatsApp wants it.
    const digits = $('phone').value.replace(/\D/g, '');
    if (digits !== $('phone').value) $('phone').value = digits;
  });
  $('phone-form').addEventListener('submit', (e) => {
    e.preventDefault();
    if (!pairing) return;
    $('phone-form').hidden = true;
    void startPairing(pairing.id, 'code', $('phone').value);
  });
  $('cancel').addEventListener('click', async () => {
    if (!pairing) return;
    const { id } = pairing;
    try {
      if (pairing.source) await call('DELETE', `/sessions/${encodeURIComponent(id)}/pair`);
    } catch (error) {
      notice(error.message);
    }
    closePanel();
    void refresh();
  });
  $('close').addEventListener('click', closePanel);
  $('add-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const id = $('new-id').value.trim();
    const label = $('new-label').value.trim();
    try {
      await call('POST', '/sessions', label ? { id, label } : { id });
      $('new-id').value = '';
      $('new-label').value = '';
      notice('');
      await refresh();
    } catch (error) {
      notice(`Could not add the session: ${error.message}`);
    }
  });
  void refresh();
  setInterval(refresh, 2000);
}

init();
