package main

// wire: the TCP connection under hashicorp's session, seen frame by frame.
//
// The Debian snapshot (0.0+git20190923) has no way to reset a stream or to
// refuse an open, and counts nothing.  The peer therefore hands the session
// this wrapper instead of the bare connection.  It parses the frame headers
// going both ways (never the payload) and:
//   - counts pings, resets, GoAways and payload bytes for `stats`;
//   - tells a waiter when the peer's FIN or RST for a stream arrives (the
//     snapshot's reads return EOF after a local Close, so a client that has
//     closed cannot learn the peer's FIN through the stream);
//   - refuses opens (`--accept refuse`): a SYN frame and everything after
//     it on that stream are kept from the session, and a WindowUpdate|RST
//     answers it, as a Yamux implementation with a refuse call would;
//   - resets a stream: WindowUpdate|RST goes to the peer, the same frame is
//     fed to the local session (which then ends the stream as a peer's RST
//     would), and whatever the session still sends for the stream is
//     dropped.
// Frames are only ever added or dropped whole, at frame boundaries, so the
// session and the peer each still see a well-formed frame sequence.

import (
	"bufio"
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

const (
	hdrLen = 12

	typeData         = 0
	typeWindowUpdate = 1
	typePing         = 2
	typeGoAway       = 3

	flagSYN = 1
	flagACK = 2
	flagFIN = 4
	flagRST = 8
)

type frameHdr struct {
	version uint8
	typ     uint8
	flags   uint16
	id      uint32
	length  uint32
}

func parseHdr(b []byte) frameHdr {
	return frameHdr{
		version: b[0],
		typ:     b[1],
		flags:   binary.BigEndian.Uint16(b[2:4]),
		id:      binary.BigEndian.Uint32(b[4:8]),
		length:  binary.BigEndian.Uint32(b[8:12]),
	}
}

func encodeHdr(typ uint8, flags uint16, id, length uint32) []byte {
	b := make([]byte, hdrLen)
	b[1] = typ
	binary.BigEndian.PutUint16(b[2:4], flags)
	binary.BigEndian.PutUint32(b[4:8], id)
	binary.BigEndian.PutUint32(b[8:12], length)
	return b
}

type wireStats struct {
	pingsSent, pingsAnswered, pingsReceived atomic.Uint64
	resetsSent, resetsReceived              atomic.Uint64
	refused                                 atomic.Uint64
	bytesIn, bytesOut                       atomic.Uint64
	framesIn, framesOut                     atomic.Uint64
	goawaySent, goawayReceived              atomic.Bool
	goawayCode                              atomic.Uint32 // valid once goawayReceived
}

type endWait struct {
	ch     chan struct{}
	closed bool
}

type wire struct {
	conn   net.Conn
	refuse bool
	st     wireStats

	// input, read in the session's receive goroutine (Read): br over the
	// socket, the frame being passed on, frames to feed to the session.
	br       *bufio.Reader
	bodyLeft uint32
	drop     bool
	cur      []byte // an injected frame being handed over
	refused  map[uint32]bool
	imu      sync.Mutex
	inj      [][]byte
	wake     atomic.Bool
	done     chan struct{}
	doneOnce sync.Once

	// output: the session's writes, parsed under wmu.
	wmu       sync.Mutex
	whb       [hdrLen]byte
	whn       int
	wBodyLeft uint32
	wDrop     bool
	wPending  [][]byte
	resetOut  map[uint32]bool

	// frames Read queues for the output (Read never waits for wmu).
	qmu  sync.Mutex
	q    [][]byte
	qsig chan struct{}

	// the peer's FIN / RST per stream, for waiters.
	emu   sync.Mutex
	ends  map[uint32]*endWait
	ended map[uint32]bool
	track bool
}

func newWire(conn net.Conn, refuse, trackEnds bool) *wire {
	w := &wire{
		conn:     conn,
		refuse:   refuse,
		br:       bufio.NewReaderSize(conn, 64<<10),
		done:     make(chan struct{}),
		refused:  make(map[uint32]bool),
		resetOut: make(map[uint32]bool),
		qsig:     make(chan struct{}, 1),
		ends:     make(map[uint32]*endWait),
		ended:    make(map[uint32]bool),
		track:    trackEnds,
	}
	go w.injector()
	return w
}

// --- input ---

// Read is the session's side of the input: whole frames the session may
// see, packed into p while they are buffered; a frame to inject goes in
// at a frame boundary (a read blocked there is woken by a deadline).
func (w *wire) Read(p []byte) (int, error) {
	n := 0
	for {
		if len(w.cur) > 0 {
			k := copy(p[n:], w.cur)
			w.cur = w.cur[k:]
			return n + k, nil
		}
		if w.bodyLeft > 0 {
			want := int(w.bodyLeft)
			if w.drop {
				k, err := w.br.Discard(want)
				w.bodyLeft -= uint32(k)
				if err != nil {
					if w.woken(err) {
						continue
					}
					return n, err
				}
				continue
			}
			if want > len(p)-n {
				want = len(p) - n
			}
			if n > 0 && w.br.Buffered() < want {
				want = w.br.Buffered()
			}
			if want == 0 {
				return n, nil
			}
			k, err := w.br.Read(p[n : n+want])
			n += k
			w.bodyLeft -= uint32(k)
			if err != nil {
				if n > 0 {
					return n, nil
				}
				if w.woken(err) {
					continue
				}
				return 0, err
			}
			if w.bodyLeft > 0 {
				return n, nil
			}
			continue
		}
		// at a frame boundary
		if f := w.popInj(); f != nil {
			if n > 0 {
				w.cur = f
				return n, nil
			}
			w.cur = f
			continue
		}
		if n > 0 && (w.br.Buffered() < hdrLen || len(p)-n < hdrLen) {
			return n, nil
		}
		hb, err := w.br.Peek(hdrLen)
		if err != nil {
			if n > 0 {
				return n, nil
			}
			if w.woken(err) {
				continue
			}
			return 0, err
		}
		h := parseHdr(hb)
		w.drop = w.inspectIn(h)
		w.bodyLeft = 0
		if h.typ == typeData {
			w.bodyLeft = h.length
		}
		if !w.drop {
			if len(p)-n < hdrLen {
				// only with a tiny p; hand the header over in pieces
				w.cur = append([]byte(nil), hb...)
			} else {
				copy(p[n:], hb)
				n += hdrLen
			}
		}
		w.br.Discard(hdrLen)
	}
}

// woken: err is the deadline an injection set to wake a blocked read.
func (w *wire) woken(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() && w.wake.Swap(false) {
		w.conn.SetReadDeadline(time.Time{})
		return true
	}
	return false
}

func (w *wire) popInj() []byte {
	w.imu.Lock()
	defer w.imu.Unlock()
	if len(w.inj) == 0 {
		return nil
	}
	f := w.inj[0]
	w.inj = w.inj[1:]
	return f
}

// injectIn feeds a frame to our own session at the next frame boundary.
func (w *wire) injectIn(f []byte) {
	w.imu.Lock()
	w.inj = append(w.inj, f)
	w.imu.Unlock()
	w.wake.Store(true)
	w.conn.SetReadDeadline(time.Unix(1, 0))
}

// inspectIn looks at one frame from the peer; true: keep it (and its
// payload) from the session.
func (w *wire) inspectIn(h frameHdr) bool {
	w.st.framesIn.Add(1)
	switch h.typ {
	case typePing:
		if h.flags&flagSYN != 0 {
			w.st.pingsReceived.Add(1)
		} else if h.flags&flagACK != 0 {
			w.st.pingsAnswered.Add(1)
		}
		return false
	case typeGoAway:
		w.st.goawayCode.Store(h.length)
		w.st.goawayReceived.Store(true)
		return false
	case typeData, typeWindowUpdate:
	default:
		return false
	}
	if h.typ == typeData {
		w.st.bytesIn.Add(uint64(h.length))
	}
	if h.flags&flagRST != 0 {
		w.st.resetsReceived.Add(1)
	}
	if h.flags&(flagFIN|flagRST) != 0 {
		w.peerEnded(h.id)
	}
	if w.refused[h.id] {
		return true
	}
	if w.refuse && h.flags&flagSYN != 0 {
		w.refused[h.id] = true
		w.st.refused.Add(1)
		if h.flags&flagRST == 0 {
			w.st.resetsSent.Add(1)
			w.queueOut(encodeHdr(typeWindowUpdate, flagRST, h.id, 0))
		}
		return true
	}
	return false
}

// --- output ---

func (w *wire) Write(b []byte) (int, error) {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	total := len(b)
	for len(b) > 0 {
		if w.wBodyLeft > 0 {
			k := uint32(len(b))
			if k > w.wBodyLeft {
				k = w.wBodyLeft
			}
			if !w.wDrop {
				if _, err := w.conn.Write(b[:k]); err != nil {
					return 0, err
				}
			}
			b = b[k:]
			w.wBodyLeft -= k
			continue
		}
		k := copy(w.whb[w.whn:], b)
		w.whn += k
		b = b[k:]
		if w.whn < hdrLen {
			break
		}
		w.whn = 0
		h := parseHdr(w.whb[:])
		w.wDrop = w.inspectOut(h)
		if h.typ == typeData {
			w.wBodyLeft = h.length
		}
		if !w.wDrop {
			if _, err := w.conn.Write(w.whb[:]); err != nil {
				return 0, err
			}
		}
	}
	if err := w.flushPendingLocked(); err != nil {
		return 0, err
	}
	return total, nil
}

func (w *wire) inspectOut(h frameHdr) bool {
	switch h.typ {
	case typePing:
		if h.flags&flagSYN != 0 {
			w.st.pingsSent.Add(1)
		}
	case typeGoAway:
		w.st.goawaySent.Store(true)
	case typeData, typeWindowUpdate:
		if w.resetOut[h.id] {
			return true
		}
		if h.typ == typeData {
			w.st.bytesOut.Add(uint64(h.length))
		}
		if h.flags&flagRST != 0 {
			w.st.resetsSent.Add(1)
		}
	}
	w.st.framesOut.Add(1)
	return false
}

func (w *wire) flushPendingLocked() error {
	if w.whn != 0 || w.wBodyLeft != 0 {
		return nil
	}
	for len(w.wPending) > 0 {
		f := w.wPending[0]
		w.wPending = w.wPending[1:]
		w.st.framesOut.Add(1)
		if _, err := w.conn.Write(f); err != nil {
			return err
		}
	}
	return nil
}

// writeFrame sends a frame of our own at the next frame boundary.
func (w *wire) writeFrame(f []byte) error {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	w.wPending = append(w.wPending, f)
	return w.flushPendingLocked()
}

func (w *wire) queueOut(f []byte) {
	w.qmu.Lock()
	w.q = append(w.q, f)
	w.qmu.Unlock()
	select {
	case w.qsig <- struct{}{}:
	default:
	}
}

func (w *wire) injector() {
	for {
		select {
		case <-w.qsig:
		case <-w.done:
			return
		}
		w.qmu.Lock()
		q := w.q
		w.q = nil
		w.qmu.Unlock()
		for _, f := range q {
			if w.writeFrame(f) != nil {
				return
			}
		}
	}
}

// reset: RST to the peer, the same to our own session, and nothing more
// from the session for this stream.
func (w *wire) reset(id uint32) {
	rst := encodeHdr(typeWindowUpdate, flagRST, id, 0)
	w.wmu.Lock()
	w.resetOut[id] = true
	w.wPending = append(w.wPending, rst)
	w.st.resetsSent.Add(1)
	w.flushPendingLocked()
	w.wmu.Unlock()
	w.injectIn(encodeHdr(typeWindowUpdate, flagRST, id, 0))
}

// --- the peer's FIN / RST per stream ---

func (w *wire) peerEnded(id uint32) {
	if !w.track {
		return
	}
	w.emu.Lock()
	defer w.emu.Unlock()
	if e := w.ends[id]; e != nil {
		if !e.closed {
			e.closed = true
			close(e.ch)
		}
		return
	}
	w.ended[id] = true
}

// endCh: closed once the peer has sent FIN or RST on stream id (needs
// trackEnds).  forget(id) when done with it.
func (w *wire) endCh(id uint32) <-chan struct{} {
	w.emu.Lock()
	defer w.emu.Unlock()
	e := w.ends[id]
	if e == nil {
		e = &endWait{ch: make(chan struct{})}
		w.ends[id] = e
		if w.ended[id] {
			delete(w.ended, id)
			e.closed = true
			close(e.ch)
		}
	}
	return e.ch
}

func (w *wire) forget(id uint32) {
	w.emu.Lock()
	delete(w.ends, id)
	delete(w.ended, id)
	w.emu.Unlock()
}

// --- the rest of io.ReadWriteCloser ---

func (w *wire) Close() error {
	w.doneOnce.Do(func() { close(w.done) })
	return w.conn.Close()
}
