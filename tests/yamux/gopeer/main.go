// gopeer: tests/yamux/PEER.md on Debian's hashicorp/yamux
// (golang-github-hashicorp-yamux-dev 0.0+git20190923, Go 1.19).
//
// Built by tests/yamux/build-gopeer.sh (GOPATH=/usr/share/gocode,
// GO111MODULE=off, offline).  What that snapshot cannot do, and what this
// peer does about it:
//   - no stream reset and no refuse call: wire.go adds them on the frames
//     (WindowUpdate|RST), see there;
//   - after a local Close (its only FIN) reads return EOF: a stream cannot
//     half-close and then read.  --check-echo and --bench-rr therefore read
//     the whole echo back before closing; --bench-throughput closes and
//     learns the peer's FIN from wire.go; a relayed TCP half-close
//     (--forward-listen, --accept forward:) closes the stream, after which
//     the rest of the reply is lost (logged on stderr);
//   - no open timeout and no cap on streams: --open-timeout and
//     --max-streams are "unsupported" (exit 2);
//   - a keepalive Ping unanswered within ConnectionWriteTimeout ends the
//     session, so --keepalive-timeout sets ConnectionWriteTimeout (which
//     also bounds how long a frame may wait to be written);
//   - no per-session memory accounting: session_bytes is null.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/yamux"
)

// --- output ---

var outMu sync.Mutex
var exiting atomic.Bool

func emit(kv ...interface{}) {
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Quote(kv[i].(string)))
		b.WriteByte(':')
		b.WriteString(jsonValue(kv[i+1]))
	}
	b.WriteString("}\n")
	outMu.Lock()
	os.Stdout.WriteString(b.String())
	outMu.Unlock()
}

func jsonValue(v interface{}) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return strconv.Quote(x)
	case bool:
		return strconv.FormatBool(x)
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case uint32:
		return strconv.FormatUint(uint64(x), 10)
	case uint64:
		return strconv.FormatUint(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'f', 6, 64)
	default:
		return strconv.Quote(fmt.Sprint(x))
	}
}

func unsupported(what, why string) {
	emit("event", "unsupported", "what", what, "why", why)
	fmt.Fprintf(os.Stderr, "gopeer: unsupported: %s: %s\n", what, why)
	os.Exit(2)
}

func fatalf(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "gopeer: "+format+"\n", a...)
	os.Exit(1)
}

// --- options ---

type options struct {
	listen, connect    string
	client, server     bool
	window             uint
	keepalive          uint
	keepaliveTimeout   uint
	backlog            int
	maxStreams         int
	openTimeout        int
	accept             string
	forwardListen      string
	raw                bool
	verbose            bool
	checkEcho          int64
	benchThroughput    int64
	benchRR            int
	size               int
	streams            int
	idleStreams        int
	acceptMode         string
	acceptArg          string
	isClient           bool
	runsClientWorkload bool
	plain              bool
}

func parseOptions() *options {
	o := &options{}
	fs := flag.NewFlagSet("gopeer", flag.ContinueOnError)
	fs.StringVar(&o.listen, "listen", "", "HOST:PORT to accept one connection on")
	fs.StringVar(&o.connect, "connect", "", "HOST:PORT to dial")
	fs.BoolVar(&o.client, "client", false, "client role (odd ids)")
	fs.BoolVar(&o.server, "server", false, "server role (even ids)")
	fs.UintVar(&o.window, "window", 262144, "receive window per stream")
	fs.UintVar(&o.keepalive, "keepalive", 0, "ping interval in ms (0: none)")
	fs.UintVar(&o.keepaliveTimeout, "keepalive-timeout", 30000, "ms")
	fs.IntVar(&o.backlog, "backlog", 256, "accept backlog")
	fs.IntVar(&o.maxStreams, "max-streams", -1, "unsupported")
	fs.IntVar(&o.openTimeout, "open-timeout", -1, "unsupported")
	fs.StringVar(&o.accept, "accept", "echo", "echo|discard|forward:H:P|refuse|hold|stall-prefix:TEXT")
	fs.StringVar(&o.forwardListen, "forward-listen", "", "HOST:PORT")
	fs.BoolVar(&o.raw, "raw", false, "plain TCP, no Yamux")
	fs.BoolVar(&o.plain, "plain", false, "benchmarks: hashicorp on the bare connection, without wire.go (no reset, refuse, FIN tracking or counters)")
	fs.BoolVar(&o.verbose, "verbose", false, "stream events")
	fs.Int64Var(&o.checkEcho, "check-echo", 0, "BYTES per stream")
	fs.Int64Var(&o.benchThroughput, "bench-throughput", 0, "BYTES per stream")
	fs.IntVar(&o.benchRR, "bench-rr", 0, "COUNT")
	fs.IntVar(&o.size, "size", 32, "request size for --bench-rr")
	fs.IntVar(&o.streams, "streams", 1, "streams for --check-echo / --bench-throughput")
	fs.IntVar(&o.idleStreams, "idle-streams", 0, "N")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if fs.NArg() > 0 {
		fatalf("unexpected argument %q", fs.Arg(0))
	}
	if (o.listen == "") == (o.connect == "") {
		fmt.Fprintln(os.Stderr, "gopeer: exactly one of --listen, --connect")
		os.Exit(2)
	}
	if o.maxStreams >= 0 {
		unsupported("--max-streams", "hashicorp/yamux 2019 has no cap on open streams")
	}
	if o.openTimeout >= 0 {
		unsupported("--open-timeout", "hashicorp/yamux 2019 has no stream open timeout")
	}
	if o.window < 262144 || o.window > 1<<31 {
		fatalf("--window: %d (hashicorp needs 262144 or more)", o.window)
	}
	if o.backlog <= 0 {
		fatalf("--backlog must be positive")
	}
	mode := o.accept
	if i := strings.IndexByte(mode, ':'); i >= 0 {
		o.acceptMode, o.acceptArg = mode[:i], mode[i+1:]
	} else {
		o.acceptMode = mode
	}
	switch o.acceptMode {
	case "echo", "discard", "refuse", "hold":
		if o.acceptArg != "" {
			fatalf("--accept %s takes no argument", o.acceptMode)
		}
	case "forward", "stall-prefix":
		if o.acceptArg == "" {
			fatalf("--accept %s: needs an argument", o.acceptMode)
		}
	default:
		fatalf("--accept: unknown mode %q", o.accept)
	}
	o.isClient = o.connect != ""
	if o.client {
		o.isClient = true
	}
	if o.server {
		o.isClient = false
	}
	o.runsClientWorkload = o.checkEcho > 0 || o.benchThroughput > 0 || o.benchRR > 0 || o.idleStreams > 0
	if o.streams <= 0 {
		fatalf("--streams must be positive")
	}
	return o
}

// --- a stream: a Yamux stream or (--raw) a TCP connection ---

type pstream interface {
	io.Reader
	io.Writer
	closeWrite() error // FIN (Go yamux: Close, see the top)
	close() error
	reset()
	id() uint32
	endCh() <-chan struct{} // the peer's FIN or RST, where known
	forget()
}

type ystream struct {
	*yamux.Stream
	w *wire
}

func (s ystream) closeWrite() error      { return s.Stream.Close() }
func (s ystream) close() error           { return s.Stream.Close() }
func (s ystream) reset() {
	if s.w != nil {
		s.w.reset(s.Stream.StreamID())
	}
}
func (s ystream) id() uint32             { return s.Stream.StreamID() }
func (s ystream) endCh() <-chan struct{} {
	if s.w == nil {
		return nil // --plain: read to EOF instead
	}
	return s.w.endCh(s.Stream.StreamID())
}
func (s ystream) forget() {
	if s.w != nil {
		s.w.forget(s.Stream.StreamID())
	}
}

type tstream struct {
	*net.TCPConn
	n uint32
}

func (s tstream) closeWrite() error { return s.TCPConn.CloseWrite() }
func (s tstream) close() error      { return s.TCPConn.Close() }
func (s tstream) reset() {
	s.TCPConn.SetLinger(0)
	s.TCPConn.Close()
}
func (s tstream) id() uint32             { return s.n }
func (s tstream) endCh() <-chan struct{} { return nil }
func (s tstream) forget()                {}

func errName(err error) interface{} {
	switch {
	case err == nil, err == io.EOF:
		return nil
	case errors.Is(err, yamux.ErrConnectionReset), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE):
		return "ECONNRESET"
	case errors.Is(err, yamux.ErrSessionShutdown):
		return "ECONNABORTED"
	case errors.Is(err, yamux.ErrTimeout), errors.Is(err, yamux.ErrConnectionWriteTimeout):
		return "ETIMEDOUT"
	case errors.Is(err, yamux.ErrRemoteGoAway), errors.Is(err, syscall.ECONNREFUSED):
		return "ECONNREFUSED"
	case errors.Is(err, yamux.ErrStreamClosed):
		return "EPIPE"
	}
	return err.Error()
}

// --- the peer ---

type peer struct {
	o        *options
	sess     *yamux.Session
	w        *wire
	opened   atomic.Uint64
	accepted atomic.Uint64
	held     sync.Map // streams held open (stall-prefix, idle)
	rawAddr  string
	rawN     atomic.Uint32
}

func (p *peer) open() (pstream, error) {
	if p.o.raw {
		c, err := net.Dial("tcp", p.rawAddr)
		if err != nil {
			return nil, err
		}
		p.opened.Add(1)
		return tstream{c.(*net.TCPConn), p.rawN.Add(1)}, nil
	}
	st, err := p.sess.OpenStream()
	if err != nil {
		return nil, err
	}
	p.opened.Add(1)
	if p.o.verbose {
		emit("event", "stream", "id", st.StreamID(), "dir", "out")
	}
	return ystream{st, p.w}, nil
}

func (p *peer) streamEnd(s pstream, err error) {
	if p.o.verbose {
		emit("event", "stream_end", "id", s.id(), "error", errName(err))
	}
}

// handle a stream the peer opened, as --accept says.
func (p *peer) handle(s pstream) {
	switch p.o.acceptMode {
	case "echo":
		p.streamEnd(s, echo(s, nil))
	case "discard":
		_, err := io.Copy(io.Discard, s)
		if err == nil {
			s.closeWrite()
		}
		s.close()
		p.streamEnd(s, err)
	case "forward":
		p.streamEnd(s, p.forward(s))
	case "stall-prefix":
		prefix := []byte(p.o.acceptArg)
		got := make([]byte, len(prefix))
		n, err := io.ReadFull(s, got)
		if err == nil && string(got) == string(prefix) {
			fmt.Fprintf(os.Stderr, "gopeer: stream %d starts with %q: never read again\n", s.id(), prefix)
			p.held.Store(s, true)
			return
		}
		if err == io.ErrUnexpectedEOF {
			err = io.EOF
		}
		if err != nil && err != io.EOF {
			s.close()
			p.streamEnd(s, err)
			return
		}
		p.streamEnd(s, echo(s, got[:n]))
	case "refuse":
		s.reset() // --raw: a TCP reset; Yamux opens never get here (wire.go)
	case "hold":
		p.held.Store(s, true) // --raw only: Yamux streams are never accepted
	}
}

// echo writes back everything read (first `pre`); after the peer's FIN,
// FIN and close.
func echo(s pstream, pre []byte) error {
	if len(pre) > 0 {
		if _, err := s.Write(pre); err != nil {
			s.close()
			return err
		}
	}
	buf := make([]byte, 64<<10)
	for {
		n, err := s.Read(buf)
		if n > 0 {
			if _, werr := s.Write(buf[:n]); werr != nil {
				s.close()
				return werr
			}
		}
		if err == io.EOF {
			s.closeWrite()
			s.close()
			return nil
		}
		if err != nil {
			s.close()
			return err
		}
	}
}

// relay a stream and a TCP connection both ways.
func relay(s pstream, c *net.TCPConn) error {
	errs := make(chan error, 2)
	go func() { // stream -> TCP
		_, err := io.Copy(c, s)
		if err == nil {
			c.CloseWrite()
		} else {
			c.SetLinger(0)
			c.Close()
		}
		errs <- err
	}()
	go func() { // TCP -> stream
		_, err := io.Copy(s, c)
		if err == nil {
			if _, ok := s.(ystream); ok {
				fmt.Fprintf(os.Stderr, "gopeer: stream %d: TCP half-close -> Close (later reads on it see EOF: hashicorp/yamux 2019)\n", s.id())
			}
			s.closeWrite()
		} else {
			s.reset()
		}
		errs <- err
	}()
	e1 := <-errs
	e2 := <-errs
	c.Close()
	s.close()
	if e1 != nil {
		return e1
	}
	return e2
}

func (p *peer) forward(s pstream) error {
	c, err := net.Dial("tcp", p.o.acceptArg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "gopeer: forward %s: %v\n", p.o.acceptArg, err)
		s.reset()
		return err
	}
	return relay(s, c.(*net.TCPConn))
}

func (p *peer) forwardListen(ln *net.TCPListener) {
	for {
		c, err := ln.AcceptTCP()
		if err != nil {
			return
		}
		go func() {
			s, err := p.open()
			if err != nil {
				fmt.Fprintf(os.Stderr, "gopeer: forward-listen: open: %v\n", err)
				c.SetLinger(0)
				c.Close()
				return
			}
			p.streamEnd(s, relay(s, c))
		}()
	}
}

// --- session ---

func (p *peer) acceptLoop() {
	for {
		st, err := p.sess.AcceptStream()
		if err != nil {
			return
		}
		p.accepted.Add(1)
		if p.o.verbose {
			emit("event", "stream", "id", st.StreamID(), "dir", "in")
		}
		go p.handle(ystream{st, p.w})
	}
}

// sessionError: hashicorp keeps why a session ended to itself; once it
// has ended, AcceptStream returns it (after handing out what is still in
// the backlog, each of which fails to ACK with ErrSessionShutdown).
func (p *peer) sessionError() error {
	var last error
	for i := 0; i < p.o.backlog+2; i++ {
		st, err := p.sess.AcceptStream()
		if err == nil {
			st.Close()
			continue
		}
		last = err
		if err != yamux.ErrSessionShutdown {
			break
		}
	}
	return last
}

func (p *peer) closedReason(err error) interface{} {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	switch {
	case err == nil, err == yamux.ErrSessionShutdown:
		return nil
	case err == yamux.ErrKeepAliveTimeout, err == yamux.ErrTimeout, err == yamux.ErrConnectionWriteTimeout:
		return "ETIMEDOUT"
	case msg == "yamux protocol error", msg == "remote yamux internal error",
		msg == "unexpected go away received":
		return "ECONNABORTED"
	case err == yamux.ErrInvalidVersion, err == yamux.ErrInvalidMsgType,
		err == yamux.ErrDuplicateStream, err == yamux.ErrRecvWindowExceeded,
		err == yamux.ErrUnexpectedFlag:
		return "EPROTO"
	case err == io.EOF, errors.Is(err, io.ErrUnexpectedEOF):
		if p.w != nil && p.w.st.goawayReceived.Load() && p.w.st.goawayCode.Load() == 0 {
			return nil
		}
		return "ECONNRESET"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "ECONNRESET"
	case errors.Is(err, syscall.ETIMEDOUT):
		return "ETIMEDOUT"
	}
	fmt.Fprintf(os.Stderr, "gopeer: session ended: %v (reported as ECONNRESET)\n", err)
	return "ECONNRESET"
}

func (p *peer) watchSession() {
	<-p.sess.CloseChan()
	err := p.sessionError()
	if exiting.Load() {
		return
	}
	fmt.Fprintf(os.Stderr, "gopeer: session ended: %v\n", err)
	emit("event", "closed", "error", p.closedReason(err))
	os.Exit(0)
}

func (p *peer) stats() {
	if p.o.raw {
		emit("event", "stats", "streams", nil, "pending", nil, "pings_sent", nil,
			"pings_answered", nil, "pings_received", nil, "resets_received", nil,
			"goaway_received", nil, "opened", p.opened.Load())
		return
	}
	if p.w == nil {
		emit("event", "stats", "streams", p.sess.NumStreams(), "pending", nil,
			"opened", p.opened.Load(), "accepted", p.accepted.Load())
		return
	}
	st := &p.w.st
	emit("event", "stats",
		"streams", p.sess.NumStreams(),
		"pending", nil,
		"opened", p.opened.Load(),
		"accepted", p.accepted.Load(),
		"refused", st.refused.Load(),
		"resets_sent", st.resetsSent.Load(),
		"resets_received", st.resetsReceived.Load(),
		"pings_sent", st.pingsSent.Load(),
		"pings_answered", st.pingsAnswered.Load(),
		"pings_received", st.pingsReceived.Load(),
		"bytes_out", st.bytesOut.Load(),
		"bytes_in", st.bytesIn.Load(),
		"frames_out", st.framesOut.Load(),
		"frames_in", st.framesIn.Load(),
		"output_queued", nil,
		"memory", nil,
		"goaway_sent", st.goawaySent.Load(),
		"goaway_received", st.goawayReceived.Load())
}

func (p *peer) commands() {
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		cmd := strings.TrimSpace(sc.Text())
		switch cmd {
		case "":
		case "ping":
			if p.o.raw {
				emit("event", "ping", "rtt_us", nil, "error", "EINVAL")
				continue
			}
			go func() {
				rtt, err := p.sess.Ping()
				if err != nil {
					emit("event", "ping", "rtt_us", nil, "error", errName(err))
					return
				}
				emit("event", "ping", "rtt_us", rtt.Microseconds())
			}()
		case "stats":
			p.stats()
		case "goaway":
			if !p.o.raw {
				if err := p.sess.GoAway(); err != nil {
					fmt.Fprintf(os.Stderr, "gopeer: goaway: %v\n", err)
				}
			}
		case "close":
			if p.o.raw {
				emit("event", "closed", "error", nil)
				os.Exit(0)
			}
			p.sess.GoAway() // hashicorp's Close sends none; PEER.md's close is a clean end
			p.sess.Close()
		case "quit":
			os.Exit(0)
		default:
			fmt.Fprintf(os.Stderr, "gopeer: unknown command %q\n", cmd)
		}
	}
	if !p.o.runsClientWorkload || p.o.idleStreams > 0 {
		os.Exit(0) // EOF is quit
	}
}

// --- pattern: each stream's own pseudo-random bytes ---

type pattern struct {
	x    uint64
	word uint64
	left int
}

func newPattern(seed uint64) *pattern {
	return &pattern{x: seed*0x9e3779b97f4a7c15 + 0x2545f4914f6cdd1d}
}

func (g *pattern) fill(b []byte) {
	for i := range b {
		if g.left == 0 {
			g.x ^= g.x << 13
			g.x ^= g.x >> 7
			g.x ^= g.x << 17
			g.word = g.x
			g.left = 8
		}
		b[i] = byte(g.word)
		g.word >>= 8
		g.left--
	}
}

// --- client workloads ---

const chunk = 64 << 10

func (p *peer) checkOne(idx int, n int64) error {
	s, err := p.open()
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer s.forget()
	werr := make(chan error, 1)
	go func() {
		g := newPattern(uint64(idx) + 1)
		buf := make([]byte, chunk)
		for left := n; left > 0; {
			k := int64(len(buf))
			if k > left {
				k = left
			}
			g.fill(buf[:k])
			if _, err := s.Write(buf[:k]); err != nil {
				werr <- fmt.Errorf("write: %w", err)
				return
			}
			left -= k
		}
		if _, raw := s.(tstream); raw {
			s.closeWrite()
		}
		werr <- nil
	}()
	g := newPattern(uint64(idx) + 1)
	buf := make([]byte, chunk)
	want := make([]byte, chunk)
	var got int64
	var rerr error
	for got < n {
		k := int64(len(buf))
		if k > n-got {
			k = n - got
		}
		m, err := io.ReadFull(s, buf[:k])
		g.fill(want[:m])
		for i := 0; i < m; i++ {
			if buf[i] != want[i] {
				rerr = fmt.Errorf("byte %d differs", got+int64(i))
				break
			}
		}
		got += int64(m)
		if rerr == nil && err != nil {
			rerr = fmt.Errorf("read after %d bytes: %w", got, err)
		}
		if rerr != nil {
			break
		}
	}
	if rerr != nil {
		s.reset()
		<-werr
		return rerr
	}
	if err := <-werr; err != nil {
		s.close()
		return err
	}
	if _, raw := s.(tstream); raw {
		var one [1]byte
		if m, err := s.Read(one[:]); m != 0 || err != io.EOF {
			s.close()
			return fmt.Errorf("more than the echo, or no EOF: %d %v", m, err)
		}
	}
	return s.close()
}

func (p *peer) checkEcho() int {
	n, bytes := p.o.streams, p.o.checkEcho
	start := time.Now()
	var wg sync.WaitGroup
	var ok, failed atomic.Int64
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if err := p.checkOne(i, bytes); err != nil {
				fmt.Fprintf(os.Stderr, "gopeer: check stream %d: %v\n", i, err)
				failed.Add(1)
			} else {
				ok.Add(1)
			}
		}(i)
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	emit("event", "check", "streams", n, "ok", ok.Load(), "failed", failed.Load(),
		"bytes", ok.Load()*bytes, "seconds", secs)
	if failed.Load() != 0 {
		return 1
	}
	return 0
}

// waitPeerFIN: after our Close, the peer's FIN (or RST).
func waitPeerFIN(s pstream, ch <-chan struct{}) error {
	if ch == nil { // raw TCP
		_, err := io.Copy(io.Discard, s)
		return err
	}
	select {
	case <-ch:
		return nil
	case <-time.After(60 * time.Second):
		return fmt.Errorf("no FIN from the peer in 60 s")
	}
}

func (p *peer) benchThroughput() int {
	n, bytes := p.o.streams, p.o.benchThroughput
	buf := make([]byte, 1<<20)
	newPattern(7).fill(buf)
	start := time.Now()
	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := func() error {
				s, err := p.open()
				if err != nil {
					return err
				}
				defer s.forget()
				ch := s.endCh()
				for left := bytes; left > 0; {
					k := int64(len(buf))
					if k > left {
						k = left
					}
					if _, err := s.Write(buf[:k]); err != nil {
						s.close()
						return err
					}
					left -= k
				}
				s.closeWrite()
				err = waitPeerFIN(s, ch)
				s.close()
				return err
			}()
			if err != nil {
				fmt.Fprintf(os.Stderr, "gopeer: bench stream: %v\n", err)
				failed.Add(1)
			}
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	total := int64(n) * bytes
	emit("event", "bench", "mode", "throughput", "streams", n, "bytes", total,
		"seconds", secs, "gib_per_s", float64(total)/secs/float64(1<<30), "failed", failed.Load())
	if failed.Load() != 0 {
		return 1
	}
	return 0
}

func (p *peer) benchRR() int {
	count, size := p.o.benchRR, p.o.size
	req := make([]byte, size)
	newPattern(3).fill(req)
	resp := make([]byte, size)
	lat := make([]float64, 0, count)
	for i := 0; i < count; i++ {
		t0 := time.Now()
		s, err := p.open()
		if err != nil {
			fatalf("bench-rr: open: %v", err)
		}
		ch := s.endCh()
		if _, err := s.Write(req); err != nil {
			fatalf("bench-rr: write: %v", err)
		}
		if _, raw := s.(tstream); raw {
			s.closeWrite()
			if _, err := io.ReadFull(s, resp); err != nil {
				fatalf("bench-rr: read: %v", err)
			}
			if err := waitPeerFIN(s, nil); err != nil {
				fatalf("bench-rr: %v", err)
			}
		} else {
			// hashicorp 2019: no half-close then read; read the echo, then FIN.
			if _, err := io.ReadFull(s, resp); err != nil {
				fatalf("bench-rr: read: %v", err)
			}
			s.closeWrite()
			if err := waitPeerFIN(s, ch); err != nil {
				fatalf("bench-rr: %v", err)
			}
		}
		s.close()
		s.forget()
		lat = append(lat, float64(time.Since(t0).Nanoseconds())/1000)
	}
	sort.Float64s(lat)
	var sum float64
	for _, v := range lat {
		sum += v
	}
	pct := func(q float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		i := int(q * float64(len(lat)-1))
		return lat[i]
	}
	mean := 0.0
	if len(lat) > 0 {
		mean = sum / float64(len(lat))
	}
	emit("event", "bench", "mode", "rr", "count", count, "p50_us", pct(0.5),
		"p99_us", pct(0.99), "mean_us", mean)
	return 0
}

func rssKiB() interface{} {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				if v, err := strconv.ParseInt(f[1], 10, 64); err == nil {
					return v
				}
			}
		}
	}
	return nil
}

func (p *peer) idle() {
	n := p.o.idleStreams
	one := []byte{'x'}
	var back [1]byte
	for i := 0; i < n; i++ {
		s, err := p.open()
		if err != nil {
			fatalf("idle: open %d: %v", i, err)
		}
		if _, err := s.Write(one); err != nil {
			fatalf("idle: write %d: %v", i, err)
		}
		if _, err := io.ReadFull(s, back[:]); err != nil {
			fatalf("idle: read %d: %v", i, err)
		}
		p.held.Store(s, true)
	}
	emit("event", "idle", "streams", n, "rss_kib", rssKiB(), "session_bytes", nil)
}

// --- main ---

func main() {
	o := parseOptions()
	p := &peer{o: o}
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)

	if o.raw {
		runRaw(p)
		return
	}

	var fl *net.TCPListener
	if o.forwardListen != "" {
		ln, err := net.Listen("tcp", o.forwardListen)
		if err != nil {
			fatalf("--forward-listen %s: %v", o.forwardListen, err)
		}
		fl = ln.(*net.TCPListener)
	}

	var conn net.Conn
	if o.listen != "" {
		ln, err := net.Listen("tcp", o.listen)
		if err != nil {
			fatalf("--listen %s: %v", o.listen, err)
		}
		emit("event", "listening", "port", ln.Addr().(*net.TCPAddr).Port)
		if fl != nil {
			emit("event", "forwarding", "port", fl.Addr().(*net.TCPAddr).Port)
		}
		conn, err = ln.Accept()
		ln.Close()
		if err != nil {
			fatalf("accept: %v", err)
		}
	} else {
		if fl != nil {
			emit("event", "forwarding", "port", fl.Addr().(*net.TCPAddr).Port)
		}
		var err error
		conn, err = net.Dial("tcp", o.connect)
		if err != nil {
			fatalf("--connect %s: %v", o.connect, err)
		}
	}
	conn.(*net.TCPConn).SetNoDelay(true)

	cfg := yamux.DefaultConfig()
	cfg.AcceptBacklog = o.backlog
	cfg.MaxStreamWindowSize = uint32(o.window)
	cfg.EnableKeepAlive = o.keepalive > 0
	if o.keepalive > 0 {
		cfg.KeepAliveInterval = time.Duration(o.keepalive) * time.Millisecond
	}
	cfg.ConnectionWriteTimeout = time.Duration(o.keepaliveTimeout) * time.Millisecond
	cfg.LogOutput = os.Stderr

	var rw io.ReadWriteCloser = conn
	if !o.plain {
		p.w = newWire(conn, o.acceptMode == "refuse", o.runsClientWorkload)
		rw = p.w
	}
	var sess *yamux.Session
	var err error
	if o.isClient {
		sess, err = yamux.Client(rw, cfg)
	} else {
		sess, err = yamux.Server(rw, cfg)
	}
	if err != nil {
		fatalf("session: %v", err)
	}
	p.sess = sess
	emit("event", "session")

	if o.acceptMode != "hold" {
		go p.acceptLoop()
	}
	if fl != nil {
		go p.forwardListen(fl)
	}

	if !o.runsClientWorkload || o.idleStreams > 0 {
		go p.commands()
	}
	if !o.runsClientWorkload || o.idleStreams > 0 {
		go p.watchSession()
	}

	code := 0
	switch {
	case o.checkEcho > 0:
		code = p.checkEcho()
	case o.benchThroughput > 0:
		code = p.benchThroughput()
	case o.benchRR > 0:
		code = p.benchRR()
	case o.idleStreams > 0:
		p.idle()
		select {} // until stdin closes (commands) or the session ends
	default:
		select {}
	}
	exiting.Store(true)
	sess.GoAway()
	sess.Close()
	os.Exit(code)
}

// runRaw: --raw, TCP only.
func runRaw(p *peer) {
	o := p.o
	if o.forwardListen != "" {
		unsupported("--raw --forward-listen", "the raw baseline relays nothing")
	}
	go p.commands()
	if o.listen != "" {
		ln, err := net.Listen("tcp", o.listen)
		if err != nil {
			fatalf("--listen %s: %v", o.listen, err)
		}
		emit("event", "listening", "port", ln.Addr().(*net.TCPAddr).Port)
		for {
			c, err := ln.Accept()
			if err != nil {
				fatalf("accept: %v", err)
			}
			tc := c.(*net.TCPConn)
			tc.SetNoDelay(true)
			p.accepted.Add(1)
			go p.handle(tstream{tc, p.rawN.Add(1)})
		}
	}
	p.rawAddr = o.connect
	code := 0
	switch {
	case o.checkEcho > 0:
		code = p.checkEcho()
	case o.benchThroughput > 0:
		code = p.benchThroughput()
	case o.benchRR > 0:
		code = p.benchRR()
	case o.idleStreams > 0:
		p.idle()
		select {}
	default:
		fatalf("--raw --connect needs a bench or check mode")
	}
	os.Exit(code)
}
