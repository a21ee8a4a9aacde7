# lme4's InstEval: the bundled copy of the data and the reference REML fit of the crossed model
# y ~ service + (1 | s) + (1 | d) + (1 | dept) used by tests/test_condvar.py and bench/ (#19).
# Run from the repository root:  Rscript tests/reference/insteval_lme4.R
# Writes src/multilevel/datasets/data/InstEval.csv.gz, the factor levels in R order (a temporary
# file, copied into the 'insteval' entry of src/multilevel/datasets/levels.json), and
# tests/reference/insteval_lme4.json (estimates, timings of 3 lmer fits, conditional modes and
# sds). R is a tool for making test data only.
suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})
data(InstEval, package = "lme4")
d <- InstEval[, c("s", "d", "studage", "lectage", "service", "dept", "y")]
con <- gzfile("src/multilevel/datasets/data/InstEval.csv.gz", "w")
write.csv(d, con, row.names = FALSE, quote = FALSE)
close(con)
lev <- lapply(d[, c("s", "d", "studage", "lectage", "service", "dept")], levels)
writeLines(toJSON(lev, pretty = TRUE), file.path(tempdir(), "insteval_levels.json"))
message("factor levels: ", file.path(tempdir(), "insteval_levels.json"),
        " (the 'insteval' entry of src/multilevel/datasets/levels.json)")

form <- y ~ service + (1 | s) + (1 | d) + (1 | dept)
times <- numeric(3)
for (k in 1:3) {
  times[k] <- system.time(m <- lmer(form, InstEval, REML = TRUE))[["elapsed"]]
}
s <- summary(m)
vc <- as.data.frame(VarCorr(m))
ml <- refitML(m)
re <- ranef(m, condVar = TRUE)
modes <- lapply(names(re), function(g) {
  list(level = rownames(re[[g]]), mode = unname(re[[g]][, 1]),
       cond_sd = sqrt(as.vector(attr(re[[g]], "postVar"))))
})
names(modes) <- names(re)
out <- list(
  formula = "y ~ service + (1 | s) + (1 | d) + (1 | dept)",
  lme4_version = as.character(packageVersion("lme4")),
  lmer_seconds = times,
  n_obs = nrow(InstEval),
  fixef = list(terms = rownames(s$coefficients), estimate = unname(s$coefficients[, 1]),
               std_error = unname(s$coefficients[, 2])),
  varcomp = list(grp = vc$grp, sdcor = vc$sdcor, vcov = vc$vcov),
  theta = unname(getME(m, "theta")),
  reml_criterion = unname(REMLcrit(m)),
  logLik_reml = as.numeric(logLik(m)),
  logLik_ml = as.numeric(logLik(ml)),
  ml_sdcor = as.data.frame(VarCorr(ml))$sdcor,
  ml_fixef = unname(fixef(ml)),
  ranef = modes
)
writeLines(toJSON(out, digits = NA, pretty = TRUE), "tests/reference/insteval_lme4.json")
