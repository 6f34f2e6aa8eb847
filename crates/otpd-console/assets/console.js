// Progressive enhancement only: every page reads fine without it.
// Times arrive in UTC; show them in the operator's time zone, keeping UTC on hover.
document.addEventListener("DOMContentLoaded", () => {
  const format = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short",
  });
  for (const time of document.querySelectorAll("time[datetime]")) {
    const when = new Date(time.getAttribute("datetime"));
    if (!Number.isNaN(when.getTime())) {
      time.title = time.textContent;
      time.textContent = format.format(when);
    }
  }
});
