#!/usr/bin/env node
// jspeer: the part of tests/yamux/PEER.md that yamux-js 0.2.0 can do.
//
//   node tests/yamux/jspeer.js (--listen H:P | --connect H:P) [options]
//
// Needs `npm ci --prefix tests/yamux` (scripts/install-deps.sh).
//
// What yamux-js 0.2.0 does, read from its lib/ (and why this peer is kept
// to open, data, reset and ping):
//   - it compares flags exactly (flags === SYN, === ACK, === RST): a frame
//     with two flags set is taken for none of them;
//   - it never sees a FIN (its FIN test compares with SYN), so a stream
//     never ends from the peer's side; its echo never FINs back;
//   - it keeps no partial frame across socket reads: a Data frame or a
//     header split over two TCP chunks loses bytes.  Keep the data small;
//   - a peer's RST only changes the stream's state (nothing is emitted);
//     the session subclass below turns it into a 'reset' event;
//   - it has no stream reset call and no refuse: the subclass sends the
//     WindowUpdate|RST itself;
//   - Ping has no RTT: the subclass times it.
// Asked for anything else (discard, forward, hold, stall-prefix, --raw, the
// bench modes, --idle-streams, --max-streams, --open-timeout), it prints
// {"event":"unsupported",...} and exits 2.
'use strict';

const net = require('net');
const readline = require('readline');
const {Session} = require('yamux-js/lib/session');
const {Header} = require('yamux-js/lib/header');
const C = require('yamux-js/lib/constants');

function emit(obj) {
    process.stdout.write(JSON.stringify(obj) + '\n');
}

function log(...args) {
    process.stderr.write('jspeer: ' + args.join(' ') + '\n');
}

function unsupported(what, why) {
    emit({event: 'unsupported', what, why});
    log('unsupported:', what + ':', why);
    process.exit(2);
}

function usage(msg) {
    log(msg);
    process.exit(2);
}

// --- options ---

const UNSUPPORTED_OPTS = {
    '--bench-throughput': 'needs FIN back, which yamux-js never sees',
    '--bench-rr': 'needs FIN back, which yamux-js never sees',
    '--idle-streams': 'not implemented for yamux-js',
    '--max-streams': 'yamux-js has no cap on open streams',
    '--open-timeout': 'yamux-js has no open timeout',
    '--raw': 'the raw TCP baseline is the C and Go peers\' job',
};

function parseArgs(argv) {
    const o = {
        listen: null, connect: null, role: null, window: C.initialStreamWindow,
        keepalive: 0, keepaliveTimeout: 30000, backlog: 256, accept: 'echo',
        forwardListen: null, verbose: false, checkEcho: 0, streams: 1,
    };
    const num = (name, v) => {
        if (v === undefined || !/^\d+$/.test(v)) usage(name + ': needs a number');
        return Number(v);
    };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        if (a in UNSUPPORTED_OPTS) unsupported(a, UNSUPPORTED_OPTS[a]);
        switch (a) {
            case '--listen': o.listen = argv[++i]; break;
            case '--connect': o.connect = argv[++i]; break;
            case '--client': o.role = 'client'; break;
            case '--server': o.role = 'server'; break;
            case '--window': o.window = num(a, argv[++i]); break;
            case '--keepalive': o.keepalive = num(a, argv[++i]); break;
            case '--keepalive-timeout': o.keepaliveTimeout = num(a, argv[++i]); break;
            case '--backlog': o.backlog = num(a, argv[++i]); break;
            case '--accept': o.accept = argv[++i]; break;
            case '--forward-listen': o.forwardListen = argv[++i]; break;
            case '--verbose': o.verbose = true; break;
            case '--check-echo': o.checkEcho = num(a, argv[++i]); break;
            case '--streams': o.streams = num(a, argv[++i]); break;
            case '--size': num(a, argv[++i]); break;
            default: usage('unknown option ' + a);
        }
    }
    if (!o.listen === !o.connect) usage('exactly one of --listen, --connect');
    if (o.accept !== 'echo' && o.accept !== 'refuse') {
        const mode = (o.accept || '').split(':')[0];
        if (['discard', 'forward', 'hold', 'stall-prefix'].includes(mode)) {
            unsupported('--accept ' + mode, 'yamux-js never sees FIN (or: not implemented for it)');
        }
        usage('--accept: unknown mode ' + o.accept);
    }
    if (o.role === null) o.role = o.connect ? 'client' : 'server';
    return o;
}

function hostPort(s, what) {
    const i = (s || '').lastIndexOf(':');
    if (i < 0) usage(what + ': HOST:PORT');
    return {host: s.slice(0, i), port: Number(s.slice(i + 1))};
}

// --- the session, with what yamux-js leaves out ---

class PeerSession extends Session {
    constructor(isClient, config, onStream, opts) {
        super(isClient, config, onStream);
        this.opts = opts;
        this.counts = {
            pings_sent: 0, pings_answered: 0, pings_received: 0,
            resets_sent: 0, resets_received: 0, refused: 0, opened: 0, accepted: 0,
        };
        this.goawayReceived = null; // the code
        this.goawaySent = false;
        this.pingStart = new Map();
        this.pingWaiters = new Map();
    }

    incomingStream(streamID) {
        if (this.opts.accept === 'refuse' && !this.localGoaway) {
            this.counts.refused++;
            this.sendRst(streamID);
            return;
        }
        const before = this.streams.size;
        super.incomingStream(streamID);
        const st = this.streams.get(streamID);
        if (st && this.streams.size > before) {
            this.counts.accepted++;
        }
    }

    handleStreamMessage(hdr, packet, encoding) {
        const st = this.streams.get(hdr.streamID);
        if (hdr.flags & C.FLAGS.RST) this.counts.resets_received++;
        super.handleStreamMessage(hdr, packet, encoding);
        // yamux-js itself takes only an exact RST (see the top).
        if (st && hdr.flags === C.FLAGS.RST) st.emit('reset');
    }

    handlePing(hdr) {
        if (hdr.flags === C.FLAGS.SYN) {
            this.counts.pings_received++;
        } else if (hdr.flags === C.FLAGS.ACK) {
            this.counts.pings_answered++;
            const t0 = this.pingStart.get(hdr.length);
            const done = this.pingWaiters.get(hdr.length);
            this.pingStart.delete(hdr.length);
            this.pingWaiters.delete(hdr.length);
            if (t0 !== undefined && done) done(process.hrtime.bigint() - t0);
        }
        return super.handlePing(hdr);
    }

    ping() {
        if (!this.shutdown) {
            this.counts.pings_sent++;
            this.pingStart.set(this.pingID, process.hrtime.bigint());
        }
        return super.ping();
    }

    // ping with an RTT for the `ping` command: cb(nanoseconds)
    timedPing(cb) {
        const id = this.pingID;
        this.pingWaiters.set(id, cb);
        this.ping();
    }

    handleGoAway(hdr) {
        this.goawayReceived = hdr.length;
        return super.handleGoAway(hdr);
    }

    sendGoAway() {
        this.localGoaway = true; // yamux-js's goAway() does not set it
        this.goawaySent = true;
        this.goAway(C.GO_AWAY_ERRORS.goAwayNormal);
    }

    sendRst(streamID) {
        this.counts.resets_sent++;
        this.send(new Header(C.VERSION, C.TYPES.WindowUpdate, C.FLAGS.RST, streamID, 0));
    }

    resetStream(st) {
        this.sendRst(st.ID());
        this.closeStream(st.ID());
        st.forceClose();
    }
}

// --- the pattern each checked stream writes ---

function pattern(seed, n) {
    const b = Buffer.alloc(n);
    let x = (seed * 2654435761 + 12345) >>> 0;
    for (let i = 0; i < n; i++) {
        x ^= x << 13; x >>>= 0;
        x ^= x >>> 17;
        x ^= x << 5; x >>>= 0;
        b[i] = x & 0xff;
    }
    return b;
}

// --- main ---

const o = parseArgs(process.argv.slice(2));
let session = null;
let sock = null;
let closedSent = false;
let localClose = false;
let firstError = null;

function closedEvent(why) {
    if (closedSent) return;
    closedSent = true;
    emit({event: 'closed', error: why});
    process.exit(0);
}

function reason() {
    if (localClose) return null;
    const e = firstError;
    if (e) {
        if (e === C.ERRORS.errKeepAliveTimeout || e === C.ERRORS.errTimeout) return 'ETIMEDOUT';
        if (/protocol error|internal error|unexpected go away/.test(e.message)) return 'ECONNABORTED';
        if (e === C.ERRORS.errInvalidVersion || e === C.ERRORS.errInvalidMsgType ||
            e === C.ERRORS.errDuplicateStream) return 'EPROTO';
        if (e.code === 'ECONNRESET' || e.code === 'EPIPE') return 'ECONNRESET';
    }
    if (session && session.goawayReceived === 0) return null;
    return 'ECONNRESET';
}

function streamEnd(st, err) {
    if (o.verbose) emit({event: 'stream_end', id: st.ID(), error: err});
}

function onStream(st) {
    if (o.verbose) emit({event: 'stream', id: st.ID(), dir: 'in'});
    st.on('reset', () => streamEnd(st, 'ECONNRESET'));
    st.on('error', (e) => log('stream', st.ID(), e.message));
    // echo: yamux-js never sees the peer's FIN, so this never FINs back.
    st.on('data', (d) => st.write(d));
}

function openStream() {
    const st = session.open();
    session.counts.opened++;
    if (o.verbose) emit({event: 'stream', id: st.ID(), dir: 'out'});
    st.on('reset', () => streamEnd(st, 'ECONNRESET'));
    st.on('error', (e) => log('stream', st.ID(), e.message));
    return st;
}

function stats() {
    emit(Object.assign({
        event: 'stats',
        streams: session.streams.size,
        pending: null,
        goaway_sent: session.goawaySent,
        goaway_received: session.goawayReceived !== null,
    }, session.counts));
}

function commands() {
    const rl = readline.createInterface({input: process.stdin});
    rl.on('line', (line) => {
        const cmd = line.trim();
        switch (cmd) {
            case '': break;
            case 'ping':
                session.timedPing((ns) => emit({event: 'ping', rtt_us: Number(ns / 1000n)}));
                break;
            case 'stats': stats(); break;
            case 'goaway': session.sendGoAway(); break;
            case 'close':
                localClose = true;
                session.close();
                sock.end();
                closedEvent(null);
                break;
            case 'quit': process.exit(0); break;
            default: log('unknown command', JSON.stringify(cmd));
        }
    });
    rl.on('close', () => {
        if (!o.checkEcho) process.exit(0);
    });
}

// TCP connections there become streams; a TCP reset resets the stream and
// a stream reset resets the TCP connection.  TCP EOF is a FIN (stream.close).
function forwardListen(ln) {
    ln.on('connection', (c) => {
        const st = openStream();
        let ended = false;
        c.on('data', (d) => st.write(d));
        c.on('end', () => st.close());
        c.on('error', (e) => {
            if (!ended) {
                ended = true;
                log('forward-listen: TCP', e.code || e.message, '-> RST stream', st.ID());
                session.resetStream(st);
                streamEnd(st, 'ECONNRESET');
            }
        });
        st.on('data', (d) => c.write(d));
        st.on('reset', () => {
            ended = true;
            c.resetAndDestroy();
        });
    });
}

function checkEcho() {
    const n = o.streams;
    const bytes = o.checkEcho;
    const t0 = process.hrtime.bigint();
    let ok = 0, failed = 0, left = n;
    const done = (st, good, why) => {
        if (!good) log('check stream', st.ID() + ':', why);
        good ? ok++ : failed++;
        if (--left === 0) {
            const secs = Number(process.hrtime.bigint() - t0) / 1e9;
            emit({event: 'check', streams: n, ok, failed, bytes: ok * bytes, seconds: secs});
            localClose = true;
            closedSent = true;
            session.close();
            sock.end(() => process.exit(failed ? 1 : 0));
        }
    };
    for (let i = 0; i < n; i++) {
        const st = openStream();
        const want = pattern(i + 1, bytes);
        const got = [];
        let have = 0, finished = false;
        st.on('data', (d) => {
            if (finished) return;
            got.push(d);
            have += d.length;
            if (have >= bytes) {
                finished = true;
                const all = Buffer.concat(got);
                // it never sees FIN: read BYTES back, then close
                st.close();
                if (all.length !== bytes) done(st, false, 'got ' + all.length + ' bytes');
                else if (!all.equals(want)) done(st, false, 'echo differs');
                else done(st, true);
            }
        });
        st.on('reset', () => {
            if (!finished) {
                finished = true;
                done(st, false, 'reset');
            }
        });
        st.write(want);
    }
}

function start(socket) {
    sock = socket;
    sock.setNoDelay(true);
    const cfg = {
        acceptBacklog: o.backlog,
        enableKeepAlive: o.keepalive > 0,
        keepAliveInterval: (o.keepalive || 30000) / 1000,
        connectionWriteTimeout: o.keepaliveTimeout / 1000,
        maxStreamWindowSize: o.window,
        logger: (...a) => process.stderr.write('yamux-js: ' + a.map(String).join(' ') + '\n'),
    };
    session = new PeerSession(o.role === 'client', cfg, onStream, o);
    session.on('error', (e) => {
        log('session error:', e.message);
        if (!firstError) firstError = e;
    });
    sock.on('error', (e) => {
        if (!firstError) firstError = e;
    });
    sock.on('close', () => closedEvent(reason()));
    session.on('end', () => sock.end());
    sock.pipe(session).pipe(sock);
    emit({event: 'session'});
    if (o.forwardListen) {
        const {host, port} = hostPort(o.forwardListen, '--forward-listen');
        const ln = net.createServer();
        ln.listen(port, host, () => {
            emit({event: 'forwarding', port: ln.address().port});
            forwardListen(ln);
        });
    }
    if (o.checkEcho) checkEcho();
    else commands();
}

if (o.listen) {
    const {host, port} = hostPort(o.listen, '--listen');
    const srv = net.createServer({pauseOnConnect: false});
    srv.once('connection', (c) => {
        srv.close();
        start(c);
    });
    srv.listen(port, host, () => emit({event: 'listening', port: srv.address().port}));
} else {
    const {host, port} = hostPort(o.connect, '--connect');
    const c = net.connect(port, host);
    c.once('connect', () => start(c));
    c.once('error', (e) => {
        if (!sock) {
            log('connect:', e.message);
            process.exit(1);
        }
    });
}
