package controlplane

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
	"google.golang.org/protobuf/proto"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
)

// ErrStoreLocked: another ancmd holds the state store.
var ErrStoreLocked = errors.New("state store is locked by another ancmd")

var (
	bucketApps    = []byte("apps")
	bucketHistory = []byte("history")
)

// store keeps the apps applied through the API, as AppSpec messages keyed by
// name, in state_dir/state.db.
type store struct {
	db *bolt.DB
}

func openStore(stateDir string) (*store, error) {
	path := filepath.Join(stateDir, "state.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("%s: %w", path, ErrStoreLocked)
		}
		return nil, fmt.Errorf("open state store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(bucketApps); err != nil {
			return err
		}
		_, err := tx.CreateBucketIfNotExists(bucketHistory)
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("init state store: %w", err)
	}
	return &store{db: db}, nil
}

func (s *store) delete(name string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketHistory).Delete([]byte(name)); err != nil {
			return err
		}
		return tx.Bucket(bucketApps).Delete([]byte(name))
	})
}

// save keeps an app's generations (as a GetAppHistoryResponse) and, when
// spec is not nil, its spec, in one transaction.
func (s *store) save(name string, spec *ancmv1.AppSpec, gens []*ancmv1.Generation) error {
	h, err := proto.Marshal(&ancmv1.GetAppHistoryResponse{Generations: gens})
	if err != nil {
		return err
	}
	var b []byte
	if spec != nil {
		if b, err = proto.Marshal(spec); err != nil {
			return err
		}
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		if b != nil {
			if err := tx.Bucket(bucketApps).Put([]byte(name), b); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketHistory).Put([]byte(name), h)
	})
}

// history returns an app's stored generations; none when there are none
// or they do not decode.
func (s *store) history(name string) []*ancmv1.Generation {
	var h ancmv1.GetAppHistoryResponse
	_ = s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketHistory).Get([]byte(name)); v != nil {
			return proto.Unmarshal(v, &h)
		}
		return nil
	})
	return h.GetGenerations()
}

// list returns the stored specs; a record that does not decode is skipped
// and reported, not fatal.
func (s *store) list() ([]*ancmv1.AppSpec, []error) {
	var specs []*ancmv1.AppSpec
	var errs []error
	_ = s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketApps).ForEach(func(k, v []byte) error {
			spec := &ancmv1.AppSpec{}
			if err := proto.Unmarshal(v, spec); err != nil {
				errs = append(errs, fmt.Errorf("stored app %q: %w", k, err))
				return nil
			}
			specs = append(specs, spec)
			return nil
		})
	})
	return specs, errs
}

func (s *store) close() error { return s.db.Close() }
