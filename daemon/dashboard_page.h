// RenderDashboardPage: the dashboard's HTML with the current snapshot in it,
// so that the first paint already shows the numbers (a plain headless
// screenshot, a slow network, no JavaScript) before the event stream starts.
//
// The four totals cards get the snapshot's numbers; the board is shown; the
// snapshot itself goes into a <script type="application/json"
// id="snapshot"> data block, which dashboard.js renders at once (a data
// block is not executed, so the page's Content-Security-Policy stays "no
// inline script"). Every '<' of the JSON is written as \u003c, so no text of
// the snapshot (entity names, error messages: client data) can close the
// block or open a tag. Only called for authorized requests: the page without
// a snapshot holds no data and is public.
//
// Pure function: thread-safe. A page or snapshot it cannot fill (no board,
// JSON that does not parse) is returned unchanged.
#pragma once

#include <string>
#include <string_view>

namespace nomnom {

std::string RenderDashboardPage(std::string_view page, std::string_view snapshot_json);

}  // namespace nomnom
