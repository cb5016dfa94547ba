// An unmodified-style ASP.NET Core app behind ancmd with compat = "aspnetcore".
//
// ancmd sets ASPNETCORE_PORT, ASPNETCORE_APPL_PATH and ASPNETCORE_TOKEN, as
// IIS's ASP.NET Core Module does; UseIISIntegration reads them, listens on
// http://127.0.0.1:$ASPNETCORE_PORT, applies the path base, trusts
// X-Forwarded-For/-Proto, answers 400 to requests without the right
// MS-ASPNETCORE-TOKEN header, and stops the app on ancmd's
// POST {path_base}/iisintegration with MS-ASPNETCORE-EVENT: shutdown.

var builder = WebApplication.CreateBuilder(args);

// The default builder already calls UseIISIntegration; saying it again is
// harmless (the call is idempotent) and shows where the integration comes from.
builder.WebHost.UseIISIntegration();

var app = builder.Build();

app.MapGet("/", () => "Hello from ancm (ASP.NET Core)\n");
app.MapGet("/healthz", () => "ok\n");
app.MapGet("/env", (HttpContext ctx) =>
    $"ASPNETCORE_APPL_PATH={Environment.GetEnvironmentVariable("ASPNETCORE_APPL_PATH")}\n" +
    $"ANCM_APP={Environment.GetEnvironmentVariable("ANCM_APP")}\n" +
    $"ANCM_INSTANCE={Environment.GetEnvironmentVariable("ANCM_INSTANCE")}\n" +
    $"path_base={ctx.Request.PathBase}\n" +
    $"client={ctx.Connection.RemoteIpAddress}\n" +
    $"scheme={ctx.Request.Scheme}\n");

app.Run();
