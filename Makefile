# Ward — the two commands a newcomer needs are `make run` and `make test`.
GO        ?= go
BIN       := bin/ward
VERSION   ?= 0.1.0
LDFLAGS   := -X main.version=$(VERSION)
# The race detector needs cgo.
export CGO_ENABLED := 1

.PHONY: all build wasm run test bench proto fmt vet setup clean

all: build

build: wasm
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/ward

## wasm: the first-party plugins built as WASM modules, in bin/plugins
# (a dev server registers every module there under its file name: transit
# in place of its process build; kv-wasm, userpass-wasm, approle-wasm and
# jwt-wasm beside the builtins kv, userpass, approle and jwt).
WASM_PLUGINS := kv-wasm=./plugins/secrets/kv/cmd/kv-wasm transit=./plugins/secrets/transit/cmd/transit-wasm \
	userpass-wasm=./plugins/auth/userpass/cmd/userpass-wasm approle-wasm=./plugins/auth/approle/cmd/approle-wasm \
	jwt-wasm=./plugins/auth/jwt/cmd/jwt-wasm
wasm:
	@mkdir -p bin/plugins
	@for p in $(WASM_PLUGINS); do \
		name=$${p%%=*}; src=$${p#*=}; \
		echo "wasm: bin/plugins/$$name.wasm"; \
		GOOS=wasip1 GOARCH=wasm CGO_ENABLED=0 $(GO) build -trimpath -buildmode=c-shared \
			-ldflags "-X main.Version=$(VERSION)" -o bin/plugins/$$name.wasm $$src || exit 1; \
	done

## run: a dev server on 127.0.0.1:8200 with root token "root", kv-v2 at
## secret/ and the WASM plugins of bin/plugins registered
run: build
	./$(BIN) server -dev -dev-root-token-id=root -dev-plugin-dir=bin/plugins

## setup: install what the tests need (idempotent; Debian, as root)
setup:
	./scripts/setup.sh

## test: every test, with the race detector
test: setup vet
	$(GO) test -race -count=1 -timeout 20m ./...

vet:
	$(GO) vet ./...

## bench: KV v2 and AppRole logins over HTTP (32 clients, with and without a file audit device), plugin round trip (go-plugin and WASM), storage, barrier, seal, tokens, policies, leases, audit, transit, raft
bench: build
	$(GO) test -run '^$$' -bench PluginRoundTrip -benchtime 20000x ./kernel/plugin/
	$(GO) test -run '^$$' -bench . -benchtime 2s -benchmem ./kernel/barrier/ ./kernel/storage/pebble/ ./kernel/token/ ./kernel/policy/ ./plugins/secrets/kv/ ./plugins/auth/approle/ ./kernel/seal/
	$(GO) test -run '^$$' -bench 'Register|Renew|Expiry' -benchtime 2s -benchmem ./kernel/lease/
	$(GO) test -run '^$$' -bench 'Unseal' -benchtime 1x ./kernel/lease/
	$(GO) test -run '^$$' -bench 'RoundTrip|KV|Instantiate' -benchtime 2s -benchmem ./wasm/
	$(GO) test -run '^$$' -bench 'Compile|RestartFirstRequest' -benchtime 1x ./wasm/
	$(GO) test -run '^$$' -bench . -benchtime 2s -benchmem ./kernel/audit/ ./plugins/secrets/transit/
	$(GO) test -run '^$$' -bench . -benchtime 2s ./kernel/raft/
	$(GO) run ./cmd/wardbench -ward ./$(BIN) -clients 32 -duration 10s

## proto: regenerate protobuf code (needs protoc, protoc-gen-go, protoc-gen-go-grpc)
proto:
	cd sdk/proto && protoc --go_out=. --go_opt=paths=source_relative \
		--go-grpc_out=. --go-grpc_opt=paths=source_relative ward/plugin/v1/plugin.proto

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin
