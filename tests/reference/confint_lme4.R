# Reference intervals for tests/test_confint.py, made with R's lme4 and metafor.
# Run from the repository root:  Rscript tests/reference/confint_lme4.R
# Writes tests/reference/confint_lme4.json. R is a tool for making test data only.
suppressPackageStartupMessages({
  library(lme4)
  library(metafor)
  library(jsonlite)
})
data_dir <- "src/multilevel/datasets/data"
out <- list(source = paste0("lme4 ", packageVersion("lme4"), ", metafor ",
                            packageVersion("metafor"), ", ", R.version.string,
                            "; confint(m, method, oldNames = FALSE), level 0.95"))
ci <- function(m, method) {
  t0 <- proc.time()[["elapsed"]]
  x <- suppressWarnings(confint(m, method = method, oldNames = FALSE))
  list(names = rownames(x), lower = unname(x[, 1]), upper = unname(x[, 2]),
       seconds = proc.time()[["elapsed"]] - t0)
}

sleep <- read.csv(file.path(data_dir, "sleepstudy.csv"))
sleep$Subject <- factor(sleep$Subject)
m <- lmer(Reaction ~ Days + (1 | Subject) + (0 + Days | Subject), sleep)
out$sleepstudy_uncorr <- list(formula = "Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)",
                              method = "REML", profile = ci(m, "profile"), wald = ci(m, "Wald"))
m <- lmer(Reaction ~ Days + (Days | Subject), sleep, REML = FALSE)
out$sleepstudy_ml <- list(formula = "Reaction ~ Days + (Days | Subject)", method = "ML",
                          profile = ci(m, "profile"), wald = ci(m, "Wald"))

hsb <- read.csv(file.path(data_dir, "Hsb82.csv"))
hsb$school <- factor(hsb$school)
hsb$sector <- factor(hsb$sector, levels = c("Public", "Catholic"))
m <- lmer(mAch ~ meanses + cses + sector + (1 + cses | school), hsb)
out$hsb82_slope <- list(formula = "mAch ~ meanses + cses + sector + (1 + cses | school)",
                        method = "REML", profile = ci(m, "profile"), wald = ci(m, "Wald"))

cbpp <- read.csv(file.path(data_dir, "cbpp.csv"), colClasses = c(herd = "character",
                                                                   period = "character"))
m <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, family = binomial)
out$cbpp <- list(formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)",
                 method = "Laplace", profile = ci(m, "profile"), wald = ci(m, "Wald"))

three <- read.csv("tests/reference/three_correlated.csv")  # simulated: 40 groups of 15
m <- lmer(y ~ x1 + x2 + (1 + x1 + x2 | g), three, REML = FALSE)
out$three_correlated <- list(formula = "y ~ x1 + x2 + (1 + x1 + x2 | g)", method = "ML",
                             profile = ci(m, "profile"))

bcg <- escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
r <- rma(yi, vi, data = bcg, method = "REML")
q <- confint(r)
out$bcg <- list(
  data = data.frame(trial = as.character(bcg$trial), yi = as.numeric(bcg$yi),
                    sei = sqrt(as.numeric(bcg$vi))),
  formula = "yi | se(sei) ~ 1 + (1 | trial)",
  tau2 = unname(q$random["tau^2", ]), tau = unname(q$random["tau", ]),
  I2 = unname(q$random["I^2(%)", ]), columns = c("estimate", "lower", "upper")
)
write_json(out, "tests/reference/confint_lme4.json", digits = NA, auto_unbox = TRUE,
           pretty = TRUE)
