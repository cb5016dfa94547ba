# An ASP.NET Core app behind ancmd, speaking the IIS integration contract.
# Publish first, then from the repository root:
#
#   (cd examples/aspnetcore && dotnet publish -c Release -o out)
#   go run ./cmd/ancmd -c examples/aspnetcore/ancm.hcl
#   curl http://127.0.0.1:8080/
#
# Needs the .NET 8 SDK (to publish) and ASP.NET Core runtime (to run).

app "aspnetcore" {
  command = "dotnet"
  args    = ["out/AncmAspNetCore.dll"]
  compat  = "aspnetcore"

  # The first start of a .NET app is slower than a Go binary's.
  startup_timeout = "60s"

  health {
    path = "/healthz"
  }
}
