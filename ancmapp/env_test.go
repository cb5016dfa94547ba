package ancmapp

import "testing"

func TestFromEnv(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want Env
	}{
		{
			name: "not behind ancmd",
			want: Env{Addr: DefaultFallbackAddr},
		},
		{
			name: "fallback address",
			env:  map[string]string{EnvFallbackAddr: "127.0.0.1:9000"},
			want: Env{Addr: "127.0.0.1:9000"},
		},
		{
			name: "PORT alone",
			env:  map[string]string{EnvPortAlias: "5000", EnvFallbackAddr: "127.0.0.1:9000"},
			want: Env{Addr: "127.0.0.1:5000", Port: 5000},
		},
		{
			name: "behind ancmd, ANCM_PORT preferred",
			env: map[string]string{EnvPort: "41000", EnvPortAlias: "5000", EnvToken: "tok",
				EnvApp: "hello", EnvInstance: "2", EnvPathBase: "/hello"},
			want: Env{Addr: "127.0.0.1:41000", Port: 41000, Token: "tok", App: "hello", Instance: 2,
				PathBase: "/hello", Behind: true},
		},
		{
			name: "bad port kept for the listen error",
			env:  map[string]string{EnvPort: "http"},
			want: Env{Addr: "127.0.0.1:http"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{EnvPort, EnvPortAlias, EnvToken, EnvApp, EnvInstance, EnvPathBase, EnvFallbackAddr} {
				t.Setenv(k, tt.env[k])
			}
			if got := FromEnv(); got != tt.want {
				t.Fatalf("FromEnv() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestNormPathBase(t *testing.T) {
	for in, want := range map[string]string{"": "", "/": "", "/shop": "/shop", "/shop/": "/shop", "shop": "/shop", "//": ""} {
		if got := normPathBase(in); got != want {
			t.Errorf("normPathBase(%q) = %q, want %q", in, got, want)
		}
	}
}
