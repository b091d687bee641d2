package node

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"
)

const identityFile = "node.json"

// identity is what a node remembers about itself across restarts. For a
// shield it holds the gossip key received at join (the file is 0600, like
// the rest of the data dir); the server token is never stored.
type identity struct {
	Name      string   `json:"name"`
	Control   bool     `json:"control,omitempty"`
	Shield    bool     `json:"shield,omitempty"`
	ServerID  string   `json:"server_id,omitempty"`
	GossipKey string   `json:"gossip_key,omitempty"`
	Peers     []string `json:"peers,omitempty"`
	Profile   string   `json:"profile,omitempty"`
	// Decommissioned is set when the node stopped because its server was
	// decommissioned; such a data dir never starts again.
	Decommissioned bool      `json:"decommissioned,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
}

func loadIdentity(dir string) (*identity, error) {
	b, err := os.ReadFile(filepath.Join(dir, identityFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read identity: %w", err)
	}
	var id identity
	if err := json.Unmarshal(b, &id); err != nil {
		return nil, fmt.Errorf("read identity %s: %w", filepath.Join(dir, identityFile), err)
	}
	return &id, nil
}

// save writes the identity atomically (temp file, fsync, rename).
func (id *identity) save(dir string) error {
	sort.Strings(id.Peers)
	b, err := json.MarshalIndent(id, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".node-*.json")
	if err != nil {
		return fmt.Errorf("save identity: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("save identity: %w", err)
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("save identity: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("save identity: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save identity: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, identityFile)); err != nil {
		return fmt.Errorf("save identity: %w", err)
	}
	return nil
}

func (id *identity) key() ([]byte, error) {
	if id.GossipKey == "" {
		return nil, nil
	}
	return base64.StdEncoding.DecodeString(id.GossipKey)
}
