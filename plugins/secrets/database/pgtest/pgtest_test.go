package pgtest

import (
	"context"
	"testing"
)

func TestStartConnectDownUp(t *testing.T) {
	s := New(t)
	ctx := context.Background()
	if err := s.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatalf("exec: %v", err)
	}
	if _, err := s.Connect(ctx, SuperUser, "wrong"); err == nil {
		t.Fatal("a wrong password was accepted")
	}
	name, pw := s.NewSuperuser(t)
	if ok, err := s.RoleExists(ctx, name); err != nil || !ok {
		t.Fatalf("RoleExists(%s) = %v, %v", name, ok, err)
	}
	c, err := s.Connect(ctx, name, pw)
	if err != nil {
		t.Fatalf("connect as new superuser: %v", err)
	}
	c.Close(ctx)

	s.Down()
	if err := s.Exec(ctx, "SELECT 1"); err == nil {
		t.Fatal("server answered while down")
	}
	if err := s.Up(); err != nil {
		t.Fatalf("up: %v", err)
	}
	if ok, err := s.RoleExists(ctx, name); err != nil || !ok {
		t.Fatalf("after restart RoleExists(%s) = %v, %v", name, ok, err)
	}
	t.Log(s.Version())
}
