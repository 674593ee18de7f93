// Package natscluster runs a real NATS JetStream cluster inside a test
// process: three (or more) nats-server nodes routed to each other on
// loopback ports, each with its own store, which a node keeps when it is
// stopped and started again. It is for tests only; the bridge itself only
// links the client.
package natscluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Cluster is a running JetStream cluster.
type Cluster struct {
	name   string
	dir    string
	ownDir bool // made by Start, removed by Shutdown
	mu     sync.Mutex
	nodes  []*node
	// configure, when set, changes each node's options before it starts.
	configure func(*server.Options)
}

type node struct {
	name        string
	clientPort  int
	clusterPort int
	srv         *server.Server // nil while stopped
}

// Options say how to build a cluster.
type Options struct {
	// Nodes is the number of servers; default 3. One is a single server,
	// not clustered.
	Nodes int
	// Dir holds each node's store; default a new temporary folder,
	// removed by Shutdown.
	Dir string
	// Configure, when set, changes each node's options before it starts
	// (authentication, TLS).
	Configure func(*server.Options)
}

// Start starts the nodes and waits until the cluster has a JetStream
// meta leader, so that streams can be created.
func Start(ctx context.Context, o Options) (*Cluster, error) {
	n := o.Nodes
	if n == 0 {
		n = 3
	}
	c := &Cluster{name: "falco", dir: o.Dir, configure: o.Configure}
	if c.dir == "" {
		var err error
		if c.dir, err = os.MkdirTemp("", "natscluster-"); err != nil {
			return nil, err
		}
		c.ownDir = true
	}
	ports, err := freePorts(2 * n)
	if err != nil {
		return nil, err
	}
	for i := range n {
		c.nodes = append(c.nodes, &node{name: fmt.Sprintf("n%d", i+1), clientPort: ports[2*i], clusterPort: ports[2*i+1]})
	}
	for i := range c.nodes {
		if err := c.startNode(i); err != nil {
			c.Shutdown()
			return nil, err
		}
	}
	if err := c.waitMetaLeader(ctx); n > 1 && err != nil {
		c.Shutdown()
		return nil, err
	}
	return c, nil
}

func (c *Cluster) options(i int) *server.Options {
	nd := c.nodes[i]
	var routes []*url.URL
	for j, other := range c.nodes {
		if j != i {
			routes = append(routes, &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", other.clusterPort)})
		}
	}
	opts := &server.Options{
		ServerName: nd.name,
		Host:       "127.0.0.1",
		Port:       nd.clientPort,
		NoLog:      true,
		NoSigs:     true,
		JetStream:  true,
		StoreDir:   filepath.Join(c.dir, nd.name),
		// Small enough for a test machine, large enough for the tests.
		JetStreamMaxMemory: 64 << 20,
		JetStreamMaxStore:  1 << 30,
	}
	if len(c.nodes) > 1 {
		opts.Cluster = server.ClusterOpts{
			Name: c.name, Host: "127.0.0.1", Port: nd.clusterPort,
			// The nodes start one after the other: keep dialling.
			ConnectRetries: 120,
		}
		opts.Routes = routes
	}
	if c.configure != nil {
		c.configure(opts)
	}
	return opts
}

func (c *Cluster) startNode(i int) error {
	s, err := server.NewServer(c.options(i))
	if err != nil {
		return fmt.Errorf("node %s: %w", c.nodes[i].name, err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return fmt.Errorf("node %s: not ready for connections after 10s", c.nodes[i].name)
	}
	c.mu.Lock()
	c.nodes[i].srv = s
	c.mu.Unlock()
	return nil
}

func (c *Cluster) waitMetaLeader(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		c.mu.Lock()
		for _, nd := range c.nodes {
			if nd.srv != nil && nd.srv.JetStreamIsLeader() {
				c.mu.Unlock()
				return nil
			}
		}
		c.mu.Unlock()
		select {
		case <-ctx.Done():
			return errors.New("the cluster elected no JetStream meta leader")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// URLs returns the client URL of every node, running or not.
func (c *Cluster) URLs() []string {
	out := make([]string, len(c.nodes))
	for i, nd := range c.nodes {
		out[i] = fmt.Sprintf("nats://127.0.0.1:%d", nd.clientPort)
	}
	return out
}

// URL returns every node's client URL, comma-separated, as nats.Connect
// takes them.
func (c *Cluster) URL() string { return strings.Join(c.URLs(), ",") }

// Stop shuts node i down, as a crash of that machine would; its store
// stays for Restart.
func (c *Cluster) Stop(i int) {
	c.mu.Lock()
	s := c.nodes[i].srv
	c.nodes[i].srv = nil
	c.mu.Unlock()
	if s != nil {
		s.Shutdown()
		s.WaitForShutdown()
	}
}

// Restart starts node i again on the same ports and store.
func (c *Cluster) Restart(i int) error { return c.startNode(i) }

// Shutdown stops every node and removes the stores when Start made
// their folder.
func (c *Cluster) Shutdown() {
	for i := range c.nodes {
		c.Stop(i)
	}
	if c.ownDir {
		_ = os.RemoveAll(c.dir)
	}
}

// JetStream connects to the cluster with opts: the connection, for the
// caller to close, and its JetStream API.
func (c *Cluster) JetStream(opts ...nats.Option) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(c.URL(), opts...)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// CreateStream connects to the cluster and creates a stream named name,
// replicated on replicas nodes (R3 for three), on subjects.
func (c *Cluster) CreateStream(ctx context.Context, name string, replicas int, subjects ...string) error {
	nc, js, err := c.JetStream()
	if err != nil {
		return err
	}
	defer nc.Close()
	// Right after the meta leader is elected the stream's own group can
	// still fail to form; try again for a while.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err = js.CreateStream(ctx, jetstream.StreamConfig{
			Name: name, Subjects: subjects, Replicas: replicas, Storage: jetstream.FileStorage,
		})
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func freePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			_ = ln.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
