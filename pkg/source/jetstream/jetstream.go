// Package jetstream is the bridge's NATS JetStream source: it pulls the
// Falco events falcosidekick's NATS output publishes (one event's JSON per
// message, on falco.<priority>.<rule>) from a durable consumer of a
// stream, runs each through the pipeline HTTP ingest uses, and
// acknowledges a message only once its alerts are safe: spooled, when
// the bridge has a durable queue, else done with by every Alertmanager
// queue. Bridges sharing the consumer share the events; the consumer's
// max_ack_pending is the back-pressure, so nothing is dropped to keep up.
package jetstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/defaults"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/falco"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/pipeline"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/ratelog"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/text"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/tick"
)

// Runner runs one message's body, holding ack until its alerts are done
// with; pipeline.Pipeline is one.
type Runner interface {
	RunAck(body []byte, received time.Time, lim falco.Limits, ack pipeline.Ack) *pipeline.Body
}

// Options say where the events are and how to take them.
type Options struct {
	URLs     []string
	Stream   string
	Subject  string // the consumer's filter; default falco.>
	Consumer string // durable name
	// CredentialsFile (a .creds file) or NKeySeedFile authenticates.
	CredentialsFile string
	NKeySeedFile    string
	// TLSCAFile verifies the servers; TLSCertFile and TLSKeyFile are a
	// client certificate.
	TLSCAFile, TLSCertFile, TLSKeyFile string
	MaxAckPending                      int
	AckWait                            time.Duration
	// Limits apply to each message, as to an HTTP request.
	Limits falco.Limits
	// PollInterval is how often the consumer's lag is read; default 5s.
	PollInterval time.Duration
	// Name is the client's name, as the servers show it.
	Name string
}

// Defaults.
const (
	DefaultSubject       = "falco.>"
	DefaultMaxAckPending = 1000
	DefaultAckWait       = 30 * time.Second
	DefaultPollInterval  = 5 * time.Second
	// pullBatch is the most messages a bridge asks for at once, below
	// max_ack_pending.
	pullBatch = 500
)

// Source is a running JetStream consumer.
type Source struct {
	o      Options
	run    Runner
	logger *slog.Logger
	m      *metrics
	nopts  []nats.Option

	mu        sync.Mutex
	held      map[uint64]*delivery // by stream sequence
	abandoned bool                 // Close: no more acknowledgements
	nc        *nats.Conn
	cons      jetstream.Consumer

	restart chan struct{} // the consumer is gone: create it again
	errLog  *ratelog.Sampler
}

// New checks the options and reads the files they name, so that a
// mistake fails at start; Run connects.
func New(o Options, run Runner, logger *slog.Logger, reg prometheus.Registerer) (*Source, error) {
	if len(o.URLs) == 0 || o.Stream == "" || o.Consumer == "" {
		return nil, errors.New("source.nats: urls, stream and consumer are needed")
	}
	defaults.Set(&o.Subject, DefaultSubject)
	defaults.Set(&o.MaxAckPending, DefaultMaxAckPending)
	defaults.Set(&o.AckWait, DefaultAckWait)
	defaults.Set(&o.PollInterval, DefaultPollInterval)
	defaults.Set(&o.Name, "falco-am-bridge")
	s := &Source{
		o: o, run: run, logger: logger.With("source", "jetstream", "stream", o.Stream, "consumer", o.Consumer),
		held: map[uint64]*delivery{}, restart: make(chan struct{}, 1), errLog: ratelog.New(10 * time.Second),
	}
	nopts, err := s.natsOptions()
	if err != nil {
		return nil, err
	}
	s.nopts = nopts
	s.m = newMetrics(reg, o.Stream, o.Consumer, s.heldCount)
	return s, nil
}

func (s *Source) natsOptions() ([]nats.Option, error) {
	o := s.o
	opts := []nats.Option{
		nats.Name(o.Name),
		// Start without NATS, and never give up on it: HTTP ingest goes
		// on meanwhile, and the stream keeps the events.
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.ConnectHandler(func(nc *nats.Conn) {
			s.m.connected.Set(1)
			s.logger.Info("connected to NATS", "server", redact(nc.ConnectedUrl()))
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			s.m.connected.Set(1)
			s.logger.Info("reconnected to NATS", "server", redact(nc.ConnectedUrl()))
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			s.m.connected.Set(0)
			s.logger.Warn("disconnected from NATS; reconnecting", "err", err)
		}),
		nats.ClosedHandler(func(*nats.Conn) { s.m.connected.Set(0) }),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if ok, n := s.errLog.Allow(time.Now()); ok {
				s.logger.Warn("NATS error", "err", err, "suppressed_since_last", n)
			}
		}),
	}
	var errs []error
	readable := func(key, path string) bool {
		if _, err := os.Stat(path); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
			return false
		}
		return true
	}
	if o.CredentialsFile != "" && readable("source.nats.credentials_file", o.CredentialsFile) {
		opts = append(opts, nats.UserCredentials(o.CredentialsFile))
	}
	if o.NKeySeedFile != "" && readable("source.nats.nkey_seed_file", o.NKeySeedFile) {
		opt, err := nats.NkeyOptionFromSeed(o.NKeySeedFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("source.nats.nkey_seed_file: %w", err))
		} else {
			opts = append(opts, opt)
		}
	}
	if o.TLSCAFile != "" && readable("source.nats.tls.ca_file", o.TLSCAFile) {
		opts = append(opts, nats.RootCAs(o.TLSCAFile))
	}
	if o.TLSCertFile != "" && readable("source.nats.tls.cert_file", o.TLSCertFile) && readable("source.nats.tls.key_file", o.TLSKeyFile) {
		opts = append(opts, nats.ClientCert(o.TLSCertFile, o.TLSKeyFile))
	}
	return opts, errors.Join(errs...)
}

// Run connects and takes events until ctx ends, then stops taking new
// ones and returns; what it holds stays held, to be acknowledged as the
// queues finish, until Close.
func (s *Source) Run(ctx context.Context) {
	nc, err := nats.Connect(strings.Join(s.o.URLs, ","), s.nopts...)
	if err != nil {
		// With RetryOnFailedConnect only a bad option gets here.
		s.logger.Error("NATS connection", "err", err)
		return
	}
	s.mu.Lock()
	s.nc = nc
	s.mu.Unlock()
	js, err := jetstream.New(nc)
	if err != nil {
		s.logger.Error("JetStream", "err", err)
		return
	}
	var wg sync.WaitGroup
	wg.Go(func() { s.poll(ctx) })
	wg.Go(func() { s.keepAlive(ctx) })
	defer wg.Wait()

	backoff := time.Second
	for ctx.Err() == nil {
		cc, err := s.consume(ctx, js)
		if err != nil {
			s.logger.Warn("no JetStream consumer yet; trying again", "err", err, "in", backoff)
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 30*time.Second)
			continue
		}
		backoff = time.Second
		select {
		case <-ctx.Done():
		case <-s.restart:
			s.logger.Info("consuming again", "after", "the consumer's leader did not answer, or the consumer is gone")
		}
		// Drain: messages already delivered to this bridge are
		// handled, then no more come.
		cc.Drain()
		select {
		case <-cc.Closed():
		case <-time.After(5 * time.Second):
			cc.Stop()
		}
		select {
		case <-s.restart: // from the consumption just stopped
		default:
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (s *Source) consume(ctx context.Context, js jetstream.JetStream) (jetstream.ConsumeContext, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cons, err := js.CreateOrUpdateConsumer(cctx, s.o.Stream, jetstream.ConsumerConfig{
		Durable:       s.o.Consumer,
		Description:   "falco-am-bridge: Falco events to Alertmanager",
		FilterSubject: s.o.Subject,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       s.o.AckWait,
		MaxAckPending: s.o.MaxAckPending,
		MaxDeliver:    -1,
	})
	if err != nil {
		return nil, fmt.Errorf("creating consumer %q on stream %q: %w", s.o.Consumer, s.o.Stream, err)
	}
	cc, err := cons.Consume(s.handle,
		jetstream.PullMaxMessages(min(pullBatch, s.o.MaxAckPending)),
		// Heartbeats every 5 s: a pull lost with a node is noticed in 10.
		jetstream.PullExpiry(10*time.Second),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			// A pull the consumer's leader did not answer (it is being
			// created, or moving after a node left) is not asked again
			// before a missed heartbeat; start over at once instead.
			if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, nats.ErrNoResponders) {
				select {
				case s.restart <- struct{}{}:
				default:
				}
				return
			}
			if ok, n := s.errLog.Allow(time.Now()); ok {
				s.logger.Warn("consuming from JetStream", "err", err, "suppressed_since_last", n)
			}
		}))
	if err != nil {
		return nil, fmt.Errorf("consuming from %q: %w", s.o.Consumer, err)
	}
	s.mu.Lock()
	s.cons = cons
	s.mu.Unlock()
	s.logger.Info("taking Falco events from JetStream", "subject", s.o.Subject, "max_ack_pending", s.o.MaxAckPending)
	return cc, nil
}

// handle runs one message. It is called for one message at a time.
func (s *Source) handle(msg jetstream.Msg) {
	s.m.received.Inc()
	meta, err := msg.Metadata()
	if err != nil {
		// Not a JetStream delivery: nothing to acknowledge it with.
		s.logger.Debug("message without JetStream metadata", "subject", msg.Subject(), "err", err)
		return
	}
	if meta.NumDelivered > 1 {
		s.m.redeliveries.Inc()
	}
	seq := meta.Sequence.Stream
	s.mu.Lock()
	if d, ok := s.held[seq]; ok {
		// Its alerts are still queued here: the redelivery's alert would
		// only coalesce with them, and acknowledging the first delivery
		// then would let the event go before it is sent. Renew instead.
		d.msg = msg
		s.mu.Unlock()
		_ = msg.InProgress()
		return
	}
	d := &delivery{s: s, seq: seq, msg: msg}
	d.holds.Store(1) // this run's, until RunAck returns
	s.held[seq] = d
	s.mu.Unlock()

	b := s.run.RunAck(msg.Data(), time.Now(), s.o.Limits, d)
	switch {
	case b.Err != nil:
		// Nothing was taken (a full or failing spool, shutdown).
		s.forget(d)
		if err := msg.NakWithDelay(b.Err.RetryAfter); err == nil {
			s.m.naked.Inc()
		}
	case b.TooMany || (b.Alerts == 0 && b.Rejected == b.Received):
		// Not a Falco event, or none whose alert can be sent: another
		// delivery would fare no better.
		s.forget(d)
		reason := "not a valid Falco event"
		if errs := b.Errors(); len(errs) > 0 {
			reason = errs[0].Error()
		}
		if err := msg.TermWithReason(text.Cut(reason, 200)); err == nil {
			s.m.termed.Inc()
		}
	default:
		d.Done()
	}
}

// forget stops holding d, which will not be acknowledged.
func (s *Source) forget(d *delivery) {
	s.mu.Lock()
	if s.held[d.seq] == d {
		delete(s.held, d.seq)
	}
	s.mu.Unlock()
}

// acked is called when the last hold of d is let go.
func (s *Source) acked(d *delivery) {
	s.mu.Lock()
	if s.held[d.seq] == d {
		delete(s.held, d.seq)
	}
	msg, abandoned := d.msg, s.abandoned
	s.mu.Unlock()
	if abandoned {
		return
	}
	if err := msg.Ack(); err != nil {
		// It comes back after ack_wait, and coalesces in Alertmanager.
		s.logger.Debug("acknowledging a JetStream message failed", "err", err)
		return
	}
	s.m.acked.Inc()
}

func (s *Source) heldCount() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return float64(len(s.held))
}

// keepAlive renews the messages held, so that an Alertmanager away for
// longer than ack_wait does not make NATS hand them to another bridge as
// well: only a bridge that died lets its events go.
func (s *Source) keepAlive(ctx context.Context) {
	tick.Every(ctx.Done(), max(s.o.AckWait/3, 100*time.Millisecond), nil, func() {
		for _, m := range s.heldMsgs() {
			_ = m.InProgress()
		}
	})
}

// heldMsgs returns the messages held, not acknowledged yet.
func (s *Source) heldMsgs() []jetstream.Msg {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.heldLocked()
}

func (s *Source) heldLocked() []jetstream.Msg {
	msgs := make([]jetstream.Msg, 0, len(s.held))
	for _, d := range s.held {
		msgs = append(msgs, d.msg)
	}
	return msgs
}

// poll reads the consumer's lag: the events the stream holds that no
// bridge has taken yet.
func (s *Source) poll(ctx context.Context) {
	tick.Every(ctx.Done(), s.o.PollInterval, nil, func() {
		s.mu.Lock()
		cons := s.cons
		s.mu.Unlock()
		if cons == nil {
			return
		}
		ictx, cancel := context.WithTimeout(ctx, s.o.PollInterval)
		info, err := cons.Info(ictx)
		cancel()
		if err != nil {
			s.logger.Debug("reading the consumer's state", "err", err)
			return
		}
		s.m.lag.Set(float64(info.NumPending))
		s.m.ackPending.Set(float64(info.NumAckPending))
	})
}

// Close is called once the Alertmanager queues are closed: the messages
// still held are given back (Nak) for another bridge to take at once,
// and the connection is closed.
func (s *Source) Close() {
	s.mu.Lock()
	s.abandoned = true
	held := s.heldLocked()
	s.held = map[uint64]*delivery{}
	nc := s.nc
	s.mu.Unlock()
	for _, m := range held {
		if err := m.Nak(); err == nil {
			s.m.naked.Inc()
		}
	}
	if len(held) > 0 {
		s.logger.Info("JetStream events not delivered at shutdown given back to the stream", "events", len(held))
	}
	if nc != nil {
		if err := nc.FlushTimeout(2 * time.Second); err != nil {
			s.logger.Debug("flushing the NATS connection", "err", err)
		}
		nc.Close()
	}
}

// delivery is one message being run: it holds one count for the run and
// one per alert and Alertmanager queue (pipeline.Ack), and is
// acknowledged when the last is let go.
type delivery struct {
	s     *Source
	seq   uint64
	msg   jetstream.Msg // the latest delivery; guarded by s.mu
	holds atomic.Int64
}

func (d *delivery) Add(n int) { d.holds.Add(int64(n)) }

func (d *delivery) Done() {
	if d.holds.Add(-1) == 0 {
		d.s.acked(d)
	}
}

func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.User == nil {
		return u
	}
	p.User = url.User("xxxxx")
	return p.String()
}
