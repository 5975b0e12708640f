package main

import (
	"fmt"
	"log/slog"
	"net"
	"strings"

	"github.com/wardproject/ward/kernel/cluster"
	"github.com/wardproject/ward/kernel/config"
	"github.com/wardproject/ward/kernel/storage"
	pebblestore "github.com/wardproject/ward/kernel/storage/pebble"
)

// openedStorage is the server's storage: the backend the core uses and,
// for raft, the cluster node behind it.
type openedStorage struct {
	storage.Backend
	node     *cluster.Node // nil for "pebble"
	nodeName string
}

func (s *openedStorage) Close() error {
	if s.node != nil {
		return s.node.Close()
	}
	return s.Backend.Close()
}

// openStorage opens the configuration's storage. A raft node that finds
// no state founds a one-voter cluster of itself, as Vault's first node
// does.
func openStorage(cfg *config.Config, logger *slog.Logger) (*openedStorage, error) {
	sc := cfg.Storage
	switch sc.Type {
	case "pebble":
		st, err := pebblestore.Open(sc.Path, pebblestore.Options{})
		if err != nil {
			return nil, err
		}
		return &openedStorage{Backend: st}, nil
	case "raft":
		advertise, listen, err := clusterAddrs(cfg)
		if err != nil {
			return nil, err
		}
		n, err := cluster.Open(cluster.Config{Dir: sc.Path, Name: sc.NodeID, ClusterAddr: advertise, ListenAddr: listen,
			APIAddr: cfg.APIAddr, Logger: logger})
		if err != nil {
			return nil, err
		}
		return &openedStorage{Backend: n.Raft().Backend(), node: n, nodeName: n.Name()}, nil
	}
	return nil, fmt.Errorf("unsupported storage type %q", sc.Type)
}

// clusterAddrs returns the raft transport's advertised address (from
// cluster_addr, Vault's "https://host:8201", else a listener's
// cluster_address) and the one it binds (a listener's cluster_address,
// else the advertised one). Both empty: no cluster port.
func clusterAddrs(cfg *config.Config) (advertise, listen string, err error) {
	for _, l := range cfg.Listeners {
		if l.ClusterAddress != "" {
			listen = l.ClusterAddress
			break
		}
	}
	advertise = strings.TrimPrefix(strings.TrimPrefix(cfg.ClusterAddr, "https://"), "http://")
	if advertise == "" {
		advertise = listen
	}
	if listen == "" {
		listen = advertise
	}
	if advertise == "" {
		return "", "", nil
	}
	if host, port, err := net.SplitHostPort(advertise); err != nil || port == "" || port == "0" {
		return "", "", fmt.Errorf("cluster_addr %q: want host:port (with https:// or not), with a port", cfg.ClusterAddr)
	} else if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return "", "", fmt.Errorf("cluster address %q: peers cannot reach an unspecified address: set cluster_addr", advertise)
	}
	return advertise, listen, nil
}
